"""`--max-cost` on the batch route: items go into batches only while their worst cost fits the job's cap."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import anyio

from sluicegate._models import Usage
from sluicegate.jobs._view import JobView
from sluicegate.jobs.batch_runner import BatchJobConfig, run_batch_job
from sluicegate.jobs.reader import Defaults, InputProblem, iter_lines, read_requests
from sluicegate.pricing import default_table
from sluicegate.tokens import heuristic_tokens

from .test_batch_intents import FakeApi, _job, _output_ids

IDS5 = [f"doc-{i}" for i in range(5)]


def _worst(config: BatchJobConfig) -> float:
    """One item's worst cost at the batch rate (all items of this input are alike)."""
    with config.input_path.open("rb") as f:
        first = next(iter(read_requests(iter_lines(f), defaults=config.defaults)))
    assert not isinstance(first, InputProblem)
    found = default_table().estimate_cost(
        "claude-haiku-4-5", heuristic_tokens(first.params), first.params["max_tokens"], batch=True
    )
    assert found is not None
    return found


def _run(config: BatchJobConfig) -> tuple[int, str]:
    text = io.StringIO()
    outcome = anyio.run(lambda: run_batch_job(config, view=JobView(say=lambda line: print(line, file=text))))
    return outcome.exit_code, text.getvalue() + outcome.message


def _five(tmp_path: Path, api: FakeApi) -> BatchJobConfig:
    config, _ = _job(tmp_path, api)
    config.input_path.write_text("".join(json.dumps({"id": cid, "prompt": f"p {cid}"}) + "\n" for cid in IDS5))
    return replace(config, defaults=Defaults(model="claude-haiku-4-5", max_tokens=16))


def test_the_cap_stops_submitting_and_a_higher_cap_submits_the_rest(tmp_path: Path) -> None:
    """A cap of 2.5 worst costs puts two items in a batch and stops (exit 3, naming the resume with a higher cap);
    resumed with room for all, only the three others are submitted, and every item is answered once."""
    api = FakeApi()
    config = _five(tmp_path, api)
    worst = _worst(config)
    code, text = _run(replace(config, max_cost=2.5 * worst))
    assert code == 3, text
    assert "stopped at the cost cap" in text
    assert "3 item(s) not finished" in text
    assert "--max-cost '<higher>'" in text or "--max-cost <higher>" in text
    assert [len(ids) for _, ids in api.batches.values()] == [2]
    assert _output_ids(config.output_path) == IDS5[:2]
    code, text = _run(replace(config, max_cost=10 * worst))
    assert code == 0, text
    assert [len(ids) for _, ids in api.batches.values()] == [2, 3]
    assert _output_ids(config.output_path) == IDS5


def test_what_is_spent_counts_against_the_cap_across_runs(tmp_path: Path) -> None:
    """On resume the job's recorded spend, not the worst cost of what it already got, counts against the cap:
    after three answers, a cap of their real cost plus half a worst cost admits nothing, one more worst cost admits
    the fourth."""
    api = FakeApi()
    config = _five(tmp_path, api)
    config.input_path.write_text("".join(json.dumps({"id": cid, "prompt": f"p {cid}"}) + "\n" for cid in IDS5[:4]))
    worst = _worst(config)
    spent = default_table().cost("claude-haiku-4-5", _usage(), batch=True)
    assert spent is not None
    assert spent < worst / 2
    code, text = _run(replace(config, max_cost=3.5 * worst))
    assert code == 3, text
    assert _output_ids(config.output_path) == IDS5[:3]
    code, text = _run(replace(config, max_cost=3 * spent + 0.5 * worst))
    assert code == 3, text
    assert len(api.batches) == 1  # nothing more submitted
    code, text = _run(replace(config, max_cost=3 * spent + 1.01 * worst))
    assert code == 0, text
    assert [len(ids) for _, ids in api.batches.values()] == [3, 1]
    assert _output_ids(config.output_path) == IDS5[:4]


def _usage() -> Usage:
    """What the fake API bills each answer (see `batch_message`)."""
    return Usage(input_tokens=10, output_tokens=2)
