"""Input files, environment and output reading shared by the end-to-end tests of `run` and `batch`."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from sluicegate.emulator import RunningEmulator


def write_input(path: Path, n: int, *, extra_lines: tuple[str, ...] = ()) -> list[str]:
    """n Message Batches request lines (ids req-0000...), then `extra_lines` verbatim; returns the ids."""
    ids = []
    with path.open("w") as f:
        for i in range(n):
            cid = f"req-{i:04d}"
            ids.append(cid)
            params = {
                "model": "claude-haiku-4-5",
                "max_tokens": 40,
                "messages": [{"role": "user", "content": f"Summarise ticket {i}"}],
            }
            f.write(json.dumps({"custom_id": cid, "params": params}) + "\n")
        for line in extra_lines:
            f.write(line + "\n")
    return ids


def env_for(emu: RunningEmulator, key: str) -> dict[str, str]:
    """This process's environment pointing the command at the emulator with `key`."""
    env = dict(os.environ)
    env.update({"ANTHROPIC_API_KEY": key, "ANTHROPIC_BASE_URL": emu.base_url})
    return env


def read_results(out: Path) -> list[dict[str, Any]]:
    """The output's result lines; the file must never end in a partial line."""
    text = out.read_text()
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def wait_for_a_recorded_batch(proc: subprocess.Popen[Any], store: Path, *, poll: float) -> None:
    """Until the job store records its first batch, the command ends, or 30 s pass."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        if store.exists():
            try:
                with sqlite3.connect(store) as db:
                    if db.execute("SELECT count(*) FROM batches").fetchone()[0]:
                        return
            except sqlite3.OperationalError:  # the table is not created yet
                pass
        time.sleep(poll)
