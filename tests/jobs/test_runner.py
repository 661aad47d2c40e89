"""The job runner in-process, over a mock transport: when results become durable."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx2

from sluicegate._clock import SystemClock
from sluicegate.jobs import JobStore, OutputWriter
from sluicegate.jobs.durable import DurableJob
from sluicegate.jobs.reader import Defaults
from sluicegate.jobs.runner import JobConfig, JobOutcome, run_job
from sluicegate.testing import FakeClock

from .conftest import SETTINGS, make_item, ok


def _answer(text: str) -> bytes:
    message: dict[str, Any] = {
        "id": f"msg_{text}",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 2},
    }
    return json.dumps(message).encode()


def _run(
    inp: Path,
    out: Path,
    handle: Callable[[httpx2.Request], Any],
    *,
    max_concurrency: int | None = None,
    clock: FakeClock | None = None,
) -> JobOutcome:
    """One `sluicegate run` job in-process on a fake clock, its requests answered by `handle`."""
    clock = clock or FakeClock()
    config = JobConfig(
        input_path=inp,
        output_path=out,
        api_key="test-key",
        base_url="http://api.test",
        settings_base="test",
        defaults=Defaults(model="claude-haiku-4-5", max_tokens=16),
        max_concurrency=max_concurrency,
        transport=httpx2.MockTransport(handle),
    )
    return clock.run(lambda: run_job(config, clock=clock))


def test_an_answer_before_a_lull_is_committed_without_waiting_for_the_next(tmp_path: Path) -> None:
    """The first answer reaches the output file while the second request is still unanswered."""
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("".join(json.dumps({"id": f"doc-{i}", "prompt": f"prompt {i}"}) + "\n" for i in range(2)))
    seen_during_lull: list[int] = []

    async def handle(request: httpx2.Request) -> httpx2.Response:
        prompt = json.loads(request.content)["messages"][0]["content"]
        if prompt == "prompt 1":
            for _ in range(200):  # bounded: 2 s at most (of the fake clock's time)
                lines = out.read_bytes().count(b"\n") if out.exists() else 0
                if lines:
                    seen_during_lull.append(lines)
                    break
                await anyio.sleep(0.01)
        return httpx2.Response(200, content=_answer(prompt), headers={"content-type": "application/json"})

    outcome = _run(inp, out, handle, max_concurrency=2)
    assert outcome.exit_code == 0, outcome.message
    assert seen_during_lull == [1]
    assert sorted(json.loads(line)["custom_id"] for line in out.read_text().splitlines()) == ["doc-0", "doc-1"]


def test_answers_are_committed_once_two_wait_whatever_the_window(tmp_path: Path) -> None:
    """A loop that falls behind stretches the commit window; the count of waiting answers still bounds a kill's loss."""
    store = JobStore.open(tmp_path / "job.db", settings=SETTINGS, commit_interval=3600.0)
    job = DurableJob(
        store,
        lambda: OutputWriter.open(tmp_path / "out.jsonl", store.output, "completion"),
        clock=SystemClock(),
        unsaved_max=2,
    )
    items = [make_item(i) for i in range(3)]
    written = []
    with job:
        for item in items:
            store.admit(item)
        for item in items:
            job.record(ok(item))
            written.append((tmp_path / "out.jsonl").read_bytes().count(b"\n"))
    assert written == [0, 2, 2]


def test_a_resumed_job_reports_what_all_its_runs_cost(tmp_path: Path) -> None:
    """The summary covers one run; the final message of a resumed job adds the whole job's totals from the store."""
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("".join(json.dumps({"id": f"doc-{i}", "prompt": f"prompt {i}"}) + "\n" for i in range(3)))
    refuse_after = [1]

    def handle(request: httpx2.Request) -> httpx2.Response:
        prompt = json.loads(request.content)["messages"][0]["content"]
        if int(prompt.split()[-1]) >= refuse_after[0]:
            body = {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}
            return httpx2.Response(401, json=body)
        return httpx2.Response(200, content=_answer(prompt), headers={"content-type": "application/json"})

    def run() -> str:
        outcome = _run(inp, out, handle, max_concurrency=1)
        return f"{outcome.exit_code}: {outcome.message}"

    first = run()
    assert first.startswith("4: ")
    assert "All runs" not in first
    refuse_after[0] = 99
    second = run()
    assert second.startswith("0: all 3 item(s) succeeded")
    assert "All runs of this job together: 3 item(s) finished, 15 tokens in, 6 out, $" in second


def test_a_whole_run_goes_by_the_clock_it_is_given(tmp_path: Path) -> None:
    """On a fake clock a 429 asking for 7 s is waited out in virtual time (the test takes a fraction of a real
    second): the retry comes 7 s later on the job's clock, and the run's wall time is read from that clock."""
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text(json.dumps({"id": "doc-0", "prompt": "p"}) + "\n")
    clock = FakeClock()
    sent: list[float] = []

    def handle(request: httpx2.Request) -> httpx2.Response:
        sent.append(clock.now())
        if len(sent) == 1:
            body = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
            return httpx2.Response(429, content=json.dumps(body).encode(), headers={"retry-after": "7"})
        return httpx2.Response(200, content=_answer("doc-0"), headers={"content-type": "application/json"})

    outcome = _run(inp, out, handle, clock=clock)
    assert outcome.exit_code == 0, outcome.message
    assert 7.0 <= sent[1] - sent[0] <= 7.7  # the server's 7 s plus the limiter's restart jitter (10% of the pause)
    assert outcome.wall is not None
    assert sent[1] <= outcome.wall <= sent[1] + 0.05  # the run started at 0 on this clock and ended at the answer
