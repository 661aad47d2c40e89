"""Job store and writer hold no per-item memory: traced Python memory stays flat over a run and a resume."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from sluicegate.jobs import InputProblem, JobStore, OutputWriter

from .conftest import SETTINGS, make_item, ok

N = 6_000
WARM = 600


def _pass(store: JobStore, writer: OutputWriter) -> tuple[int, int]:
    """Admit N items (a bad line every 100), record the unfinished, commit and write; traced memory early and late."""
    early = 0
    for i in range(N):
        if i % 100 == 99:
            store.record_problem(InputProblem(line=i + 1, index=i, custom_id=None, field=None, message="bad"))
        elif store.admit(make_item(i)) in ("new", "pending"):
            store.record_result(ok(make_item(i)))
        if store.maybe_commit():
            writer.write_committed()
        if i == WARM:
            early = tracemalloc.get_traced_memory()[0]
    store.commit()
    writer.write_committed()
    return early, tracemalloc.get_traced_memory()[0]


def test_run_and_resume_memory_stays_flat(tmp_path: Path) -> None:
    """Traced memory after 6k lines is within a small constant of that after 600, in a first run and a resume."""
    tracemalloc.start()
    try:
        for _ in range(2):  # the second pass is a resume: every line is read back from the store
            store = JobStore.open(tmp_path / "out.jsonl.db", settings=SETTINGS, commit_every=200)
            writer = OutputWriter.open(tmp_path / "out.jsonl", store.output, "completion")
            early, late = _pass(store, writer)
            writer.close()
            store.close()
            assert late < early + 128 * 1024  # catches a leak above about 25 bytes per line
    finally:
        tracemalloc.stop()
    assert (tmp_path / "out.jsonl").read_bytes().count(b"\n") == N
