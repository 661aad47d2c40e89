"""What every durable job shares: its store next to the output file, and the settings that pin a resume to the
same input.

A job store is found from the output path alone, so a re-run with the same command finds the results already paid
for; the settings stored with it (input, endpoint, defaults) make a resume with other ones a clear refusal instead
of a mixed output.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from .._exceptions import ConfigError
from ._messages import mismatch_message
from .outcome import ExitCode, JobOutcome
from .reader import Defaults
from .store import JobMismatchError, JobStore

__all__ = ["file_settings", "input_signature", "open_store", "store_path_for"]


def store_path_for(output: Path) -> Path:
    """The job store of an output file: next to the file the path leads to, so that two paths to one file (a
    symlink, a symlinked folder, `..`) are one job, locked once."""
    real = output.resolve()
    return real.with_name(real.name + ".sluicegate.db")


def open_store(
    output: Path, settings: dict[str, str], restart: bool, resume: str, **options: Any
) -> JobStore | JobOutcome:
    """The job store next to `output`, or the usage-error outcome saying why it cannot be used for this job (for a
    changed setting: which, its stored and new values, and the command that resumes with the stored ones)."""
    try:
        return JobStore.open(store_path_for(output), settings=settings, restart=restart, **options)
    except JobMismatchError as exc:
        return JobOutcome(ExitCode.USAGE, mismatch_message(exc.changes, resume, str(exc)))
    except ConfigError as exc:  # e.g. another run holds this job's store
        return JobOutcome(ExitCode.USAGE, str(exc))


def input_signature(path: Path) -> str:
    """Size plus a hash of the first and last MiB: a changed or extended input is noticed before anything is
    sent, without reading a multi-GB file twice. (Per-item fingerprints catch edits in the middle.)"""
    size = path.stat().st_size
    digest = hashlib.sha256()
    with path.open("rb") as f:
        digest.update(f.read(1 << 20))
        if size > 2 << 20:
            f.seek(size - (1 << 20))
            digest.update(f.read())
    return f"{size}:{digest.hexdigest()[:16]}"


def file_settings(input_path: Path, defaults: Defaults) -> dict[str, str]:
    """What a job store remembers of the input and its defaults, to refuse resuming with other ones."""
    return {
        "input": str(input_path.resolve()),
        "input_signature": input_signature(input_path),
        "model": defaults.model or "",
        "max_tokens": str(defaults.max_tokens or ""),
        "system": defaults.system or "",
    }
