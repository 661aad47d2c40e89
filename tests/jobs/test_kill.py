"""A real `kill -9` of a process that admits, records, commits and writes in a loop: resuming gives every id once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from sluicegate.jobs import JobStore, OutputOrder, OutputWriter

from .conftest import SETTINGS, make_item, ok

N = 20_000  # the child is killed long before this: the bound only matters if the kill never comes
BATCH = 25
IN_FLIGHT = 10  # the child records item i - IN_FLIGHT when it admits item i, like a run with requests in flight

CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[2])
    from conftest import SETTINGS, make_item, ok
    from sluicegate.jobs import JobStore, OutputOrder, OutputWriter

    folder, n, batch, in_flight, order = sys.argv[1], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
    store = JobStore.open(folder + "/out.jsonl.db", settings=SETTINGS, commit_every=batch)
    writer = OutputWriter.open(folder + "/out.jsonl", store.output, order, fsync_interval=0.01)
    for i in range(n):
        store.admit(make_item(i, prompt="x" * 200))
        if i >= in_flight:
            store.record_result(ok(make_item(i - in_flight, prompt="x" * 200)))
        if store.maybe_commit():
            writer.write_committed()
            print(writer.lines_written, flush=True)
    """
)


def _run_and_kill(tmp_path: Path, kill_after: int, order: OutputOrder) -> int:
    """Start the child, SIGKILL it once it reports kill_after written lines; return the last count it reported."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    args = [str(tmp_path), str(Path(__file__).parent), str(N), str(BATCH), str(IN_FLIGHT), order]
    proc = subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    reported = 0
    try:
        for line in proc.stdout:
            reported = int(line)
            if reported >= kill_after:
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return reported


@pytest.mark.parametrize(("kill_after", "order"), [(120, "completion"), (777, "completion"), (300, "input")])
def test_kill_9_then_resume_has_every_id_once(tmp_path: Path, kill_after: int, order: OutputOrder) -> None:
    """SIGKILL mid-loop, resume: nothing reported written is lost, every id is output once, few are re-sent."""
    reported = _run_and_kill(tmp_path, kill_after, order)
    store = JobStore.open(tmp_path / "out.jsonl.db", settings=SETTINGS)
    writer = OutputWriter.open(tmp_path / "out.jsonl", store.output, order)
    writer.write_committed()
    assert writer.lines_written >= reported  # what the child saw written survives (a cut last line is rewritten)
    upto = writer.lines_written + 3 * BATCH
    states: Counter[str] = Counter()
    for i in range(upto):
        item = make_item(i, prompt="x" * 200)
        state = store.admit(item)
        states[state] += 1
        if state in ("new", "pending"):
            store.record_result(ok(item))
    store.commit()
    writer.write_committed()
    writer.close()
    store.close()
    written = [json.loads(x)["custom_id"] for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert Counter(written) == Counter(f"id-{i}" for i in range(upto))
    if order == "input":
        assert written == [f"id-{i}" for i in range(upto)]
    # Re-sent: the requests in flight at the kill plus the results of the one uncommitted batch.
    assert states["pending"] <= IN_FLIGHT + BATCH
    assert states["done"] >= reported
