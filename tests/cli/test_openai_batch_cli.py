"""`sluicegate batch --provider openai` end to end: the real command against the emulator's Files and Batch APIs."""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sluicegate.emulator import RunningEmulator
from sluicegate.pricing import default_table

from ._jobfiles import (
    assert_batch_cost_and_no_key,
    assert_refused_key,
    assert_ten_batches_of_three_ended,
    expire_part_of_a_batch,
    kill_once_a_batch_is_recorded,
    read_results,
    retry_the_expired,
    store_of,
)

pytestmark = pytest.mark.e2e

KEY = "sk-proj-test-SECRET-do-not-leak-9012"
CREATE = "POST /v1/batches"
UPLOAD = "POST /v1/files"
EMU: dict[str, Any] = {"minute": 3.0, "batch_seconds": 20.0}  # a batch takes about a real second


def _write(path: Path, n: int, *, models: tuple[str, ...] = ("gpt-4o-mini",), extra: tuple[str, ...] = ()) -> list[str]:
    """n Chat Completions lines in OpenAI's batch format (ids req-0000...), models in turn; returns the ids."""
    ids = []
    with path.open("w") as f:
        for i in range(n):
            cid = f"req-{i:04d}"
            ids.append(cid)
            body = {
                "model": models[i % len(models)],
                "max_completion_tokens": 40,
                "messages": [{"role": "user", "content": f"Summarise ticket {i}"}],
            }
            f.write(json.dumps({"custom_id": cid, "method": "POST", "url": "/v1/chat/completions", "body": body}))
            f.write("\n")
        for line in extra:
            f.write(line + "\n")
    return ids


def _env(emu: RunningEmulator) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OPENAI_"))}
    env.update({"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": emu.openai_base_url})
    return env


def _cmd(inp: Path, out: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "sluicegate", "batch", str(inp), "-o", str(out), "--provider", "openai", *args]


def _run(emu: RunningEmulator, inp: Path, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = _cmd(inp, out, "--poll-interval", "0.1", *args)
    return subprocess.run(command, env=_env(emu), capture_output=True, text=True, timeout=60)


def _count(emu: RunningEmulator, endpoint: str) -> int:
    return int(emu.stats()["endpoints"].get(endpoint, {}).get("200", 0))


def _processed(emu: RunningEmulator) -> int:
    """Batch requests the emulator ran to an answer (what would be billed), every outcome counted once."""
    return int(emu.stats()["batch_requests"]["succeeded"]) + int(emu.stats()["batch_requests"]["errored"])


def test_one_batch_per_model_every_id_once_at_the_batch_price(
    emulator: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    """Two models make two uploaded files and batches; good lines succeed in the Message Batches results format,
    a bad line and an API-refused request are named errors, and the cost is half the online price."""
    emu = emulator(**EMU)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    # Passes the reader's checks, refused by the API (n is at most 128): it goes out and comes back in the error file.
    refused = {"model": "gpt-4o-mini", "n": 500, "messages": [{"role": "user", "content": "x"}]}
    refused_line = json.dumps(
        {"custom_id": "refused", "method": "POST", "url": "/v1/chat/completions", "body": refused}
    )
    ids = _write(inp, 12, models=("gpt-4o-mini", "gpt-4.1-mini"), extra=("{not json", refused_line))
    proc = _run(emu, inp, out)
    assert proc.returncode == 1, proc.stderr
    lines = read_results(out)
    assert Counter(line["result"]["type"] for line in lines) == {"succeeded": 12, "errored": 2}
    assert sorted(line["custom_id"] for line in lines if line["result"]["type"] == "succeeded") == ids
    by_id = {line["custom_id"]: line for line in lines}
    assert by_id["refused"]["result"]["error"]["error"]["type"] == "invalid_request_error"
    assert "'n'" in by_id["refused"]["result"]["error"]["error"]["message"]
    assert by_id["line:13"]["result"]["error"]["error"]["line"] == 13
    assert (_count(emu, UPLOAD), _count(emu, CREATE), _processed(emu)) == (2, 2, 13)
    expected = 0.0
    for line in lines:
        if line["result"]["type"] == "succeeded":
            message = line["result"]["message"]
            assert message["object"] == "chat.completion"
            usage = message["usage"]
            price = default_table().price_for(message["model"])
            assert price is not None
            expected += (usage["prompt_tokens"] * price.input + usage["completion_tokens"] * price.output) / 2e6
    assert_batch_cost_and_no_key(proc, out, KEY, expected, tmp_path)
    again = _run(emu, inp, out, "--quiet")  # a finished job: nothing is sent again
    assert again.returncode == 1, again.stderr
    assert (_count(emu, CREATE), len(read_results(out))) == (2, 14)


def test_split_within_the_request_limit(emulator: Callable[..., RunningEmulator], tmp_path: Path) -> None:
    """A cap on requests per batch splits one model's requests over files; each request is in exactly one batch."""
    emu = emulator(**EMU)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    ids = _write(inp, 25)
    proc = _run(emu, inp, out, "--max-batch-requests", "10", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert sorted(line["custom_id"] for line in read_results(out)) == ids
    with sqlite3.connect(store_of(out)) as db:
        assert [row[0] for row in db.execute("SELECT items FROM batches ORDER BY seq")] == [10, 10, 5]
    assert (_count(emu, CREATE), _processed(emu)) == (3, 25)


def test_kill_then_resume_creates_no_batch_twice(emulator: Callable[..., RunningEmulator], tmp_path: Path) -> None:
    """SIGKILL once a batch is recorded; the re-run re-attaches to the recorded batches, recognises a batch created
    but not recorded by its metadata, submits only the rest: ten batches for ten, each request answered once."""
    emu = emulator(**EMU)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    ids = _write(inp, 30)
    store = store_of(out)
    cmd = _cmd(inp, out, "--max-batch-requests", "3", "--quiet", "--poll-interval", "0.1")
    recorded = kill_once_a_batch_is_recorded(emu, cmd, _env(emu), store)
    assert _count(emu, CREATE) - recorded in (0, 1)
    resumed = _run(emu, inp, out, "--max-batch-requests", "3")
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(line["custom_id"] for line in read_results(out)) == ids
    assert _count(emu, CREATE) == 10
    assert _processed(emu) == 30
    assert_ten_batches_of_three_ended(store)


def test_expired_requests_fail_and_retry_failed_sends_only_them(
    emulator: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    """A batch that expires part-way: its finished answers are kept, the rest fail as `expired`, and
    --retry-failed submits exactly those again."""
    emu = emulator(**EMU, batch_deadline=6.0)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    ids = _write(inp, 20)
    run = functools.partial(_run, emu, inp, out)
    _, succeeded = expire_part_of_a_batch(run, out, ids)
    assert _processed(emu) == len(succeeded)
    now_succeeded = retry_the_expired(run, out, ids, succeeded)
    assert _count(emu, CREATE) == 2
    assert _processed(emu) == len(now_succeeded)  # nothing answered twice


def test_a_refused_key_stops_naming_the_variable(emulator: Callable[..., RunningEmulator], tmp_path: Path) -> None:
    """A 401 on upload stops the job (exit 4) naming OPENAI_API_KEY, never the key; nothing is written."""
    emu = emulator(**EMU, invalid_keys=frozenset({KEY}))
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(inp, 4)
    assert_refused_key(_run(emu, inp, out), "OPENAI_API_KEY", KEY, out)
    assert emu.stats()["endpoints"][UPLOAD] == {"401": 1}
