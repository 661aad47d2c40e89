"""The 'why' of real jobs against the emulator: one bound by concurrency and latency, one by requests per minute."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import anyio

from sluicegate.emulator import RunningEmulator
from sluicegate.jobs.reader import Defaults
from sluicegate.jobs.runner import JobConfig, run_job, store_path_for
from sluicegate.report import diagnose
from sluicegate.report.data import load


def _job(tmp_path: Path, emu: RunningEmulator, items: int, **options: object) -> Path:
    """Run `items` short prompts through the real runner against `emu`; returns the job's store."""
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("".join(json.dumps({"id": f"doc-{i}", "prompt": f"Summarise {i}."}) + "\n" for i in range(items)))
    config = JobConfig(
        input_path=inp,
        output_path=out,
        api_key="emulator",
        base_url=emu.base_url,
        settings_base="emulator",
        defaults=Defaults(model="claude-haiku-4-5", max_tokens=32),
        **options,  # type: ignore[arg-type]
    )
    outcome = anyio.run(lambda: run_job(config))
    assert outcome.exit_code == 0, outcome.message
    return store_path_for(out)


def test_a_job_capped_at_two_in_flight_is_bound_by_latency_and_concurrency(
    tmp_path: Path, emulator: Callable[..., RunningEmulator]
) -> None:
    """Tier 4 limits, 0.3 s answers and --max-concurrency 2: the report blames concurrency and suggests raising it."""
    emu = emulator(tier=4, first_token_latency=0.3, min_output_tokens=8, max_output_tokens=16)
    store = _job(tmp_path, emu, 16, max_concurrency=2)
    d = diagnose(load(store))
    assert d.bound == "concurrency"
    assert "at most 2 requests in flight" in d.paragraph
    assert any("--max-concurrency above 2" in line for line in d.faster)


def test_a_job_against_a_low_request_limit_is_bound_by_requests(
    tmp_path: Path, emulator: Callable[..., RunningEmulator]
) -> None:
    """60 requests per 3-second minute (20/s) with fast answers: the report names RPM and runs near its ceiling."""
    emu = emulator(tier=4, rpm=60, minute=3.0, first_token_latency=0.05, min_output_tokens=8, max_output_tokens=16)
    store = _job(tmp_path, emu, 100, minute=3.0)
    d = diagnose(load(store))
    assert d.bound == "requests"
    assert "binding limit was requests per minute (RPM): 1,200 per minute" in d.paragraph
