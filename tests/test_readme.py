"""The README's library examples run as written: each Python block of its Library section is executed against
the emulator (the key and base URL come from the environment, as the example reads them)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sluicegate.emulator import RunningEmulator

README = Path(__file__).resolve().parent.parent / "README.md"


def _library_blocks() -> list[str]:
    text = README.read_text()
    section = text.split("\n## Library\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_library_section_has_examples() -> None:
    """The section still holds the sync/async example and the SDK drop-in examples."""
    blocks = _library_blocks()
    assert len(blocks) >= 3
    assert "sluicegate.run(" in blocks[0]
    assert "sluicegate.Engine(" in blocks[0]


@pytest.mark.e2e
@pytest.mark.parametrize("index", range(len(_library_blocks())))
def test_each_library_example_runs(emulator: Callable[..., RunningEmulator], index: int, tmp_path: Path) -> None:
    """Block `index` runs to the end with exit 0 (no undefined names, no placeholders)."""
    emu = emulator(minute=3.0, rpm=2000, first_token_latency=0.01)
    script = tmp_path / "example.py"
    script.write_text(_library_blocks()[index])
    env = dict(os.environ)
    env.update({"ANTHROPIC_API_KEY": "sk-test", "ANTHROPIC_BASE_URL": emu.base_url, "OPENAI_API_KEY": "sk-test"})
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    if index == 0:
        assert proc.stdout.count("t0") >= 1  # the as_completed loop printed the first ticket's result
