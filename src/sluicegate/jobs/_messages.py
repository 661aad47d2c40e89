"""Messages that tell the user what to run next: the refused resume (what changed, and the command that keeps the
stored settings) and the raised cost cap."""

from __future__ import annotations

import shlex
from collections.abc import Mapping

__all__ = ["mismatch_message", "with_max_cost"]

# Stored job settings that a flag sets, and that flag.
_FLAGS = {
    "model": "--model",
    "max_tokens": "--max-tokens",
    "system": "--system",
    "provider": "--provider",
    "deadline": "--deadline",
}
_NAMES = {"order": "--ordered", "endpoint": "the API endpoint", "input": "the input file's path"}


def mismatch_message(changes: Mapping[str, tuple[str, str]], command: str, fallback: str) -> str:
    """Why a stored job cannot be resumed with these settings, and what to run instead."""
    if not changes:
        return f"refusing to resume: {fallback}"
    if "input_signature" in changes:
        return (
            "refusing to resume: the input file changed since the stored job was started (its size or its first or "
            "last MiB differ). Put the original input back and run the same command again, or write this input's "
            "results to another output file (-o OTHER.jsonl); --restart would discard the results already paid for."
        )
    if "mode" in changes:
        made_by, now_by = ("batch" if mode == "batch" else "run" for mode in changes["mode"])
        return (
            f"refusing to resume: this output's job store belongs to a `sluicegate {made_by}` job, not to "
            f"`sluicegate {now_by}`. Resume it with `sluicegate {made_by}`, or write to another output file "
            "(-o OTHER.jsonl) to start a separate job."
        )
    named = "; ".join(_describe(key, was, now) for key, (was, now) in changes.items())
    keep = command_with(command, changes)
    if keep is None:
        return (
            f"refusing to resume: {named}. Run with the stored job's settings, or write to another output file "
            "(-o OTHER.jsonl) to start a separate job."
        )
    return (
        f"refusing to resume: {named}. To resume the stored job with its settings, run: {keep}   "
        "To start a separate job with the new settings, write to another output file (-o OTHER.jsonl)."
    )


def _describe(key: str, was: str, now: str) -> str:
    name = _FLAGS.get(key) or _NAMES.get(key, key)
    if key == "order":
        return (
            f"{name} was {'on' if was == 'input' else 'off'} in the stored job, now {'on' if now == 'input' else 'off'}"
        )
    return f"{name} was {_show(was)} in the stored job, now {_show(now)}"


def _show(value: str) -> str:
    return "unset" if value == "" else repr(value)


def command_with(command: str, changes: Mapping[str, tuple[str, str]]) -> str | None:
    """`command` changed to use the stored values of `changes`; None when a change is not a flag (the endpoint)."""
    words = shlex.split(command)
    for key, (was, _) in changes.items():
        if key in _FLAGS:
            words = _without(words, _FLAGS[key], takes_value=True)
            if was:
                words += [_FLAGS[key], was]
        elif key == "order":
            words = _without(words, "--ordered", takes_value=False)
            if was == "input":
                words.append("--ordered")
        else:
            return None
    return shlex.join(words)


def _without(words: list[str], flag: str, *, takes_value: bool) -> list[str]:
    kept: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if word == flag:
            skip = takes_value
            continue
        if takes_value and word.startswith(flag + "="):
            continue
        kept.append(word)
    return kept


def with_max_cost(command: str) -> str:
    """The resume command with its --max-cost value replaced by a placeholder for a higher one."""
    words = _without(shlex.split(command), "--max-cost", takes_value=True)
    return shlex.join([*words, "--max-cost", "HIGHER"]).replace("HIGHER", "<higher>")
