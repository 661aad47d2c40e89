"""Reading a job's input into its store: what to send is yielded, bad lines are recorded, a changed input stops it.

Shared by `sluicegate run` and `sluicegate batch`, which differ only in what they do with the items to send.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

import anyio.lowlevel

from .._models import RequestItem
from .reader import Defaults, InputProblem, Provider, iter_lines, read_requests
from .store import AdmitState, JobMismatchError, JobStore

__all__ = ["Admission"]


class Admission:
    """Admits every input line to the store in order.

    `changed` says why reading stopped early: the input no longer matches the stored job. `on_problem` is told of
    each bad line recorded for the first time (an earlier run's are already in the output).
    """

    def __init__(self, store: JobStore, on_problem: Callable[[InputProblem], None]) -> None:
        self._store = store
        self._on_problem = on_problem
        self.changed: str | None = None
        # Lines that kept their own value where a command-line default was given: flag -> how many.
        self.kept_own: Counter[str] = Counter()

    async def items(
        self,
        path: Path,
        defaults: Defaults,
        provider: Provider = "anthropic",
        source: Iterable[RequestItem | InputProblem] | None = None,
    ) -> AsyncIterator[tuple[RequestItem, AdmitState]]:
        """The items still to be sent ("new" or "pending"), with their state. `source` replaces reading `path` as
        JSONL request lines (a table's rows through a template)."""
        # Async so that skipping a million done lines on resume yields to the event loop now and then instead of
        # freezing the requests in flight and the progress display.
        with path.open("rb") as f:
            parsed_items = (
                read_requests(iter_lines(f), defaults=defaults, provider=provider) if source is None else source
            )
            for count, parsed in enumerate(parsed_items):
                if count % 1000 == 999:
                    await anyio.lowlevel.checkpoint()
                if not isinstance(parsed, InputProblem):
                    self._note_own_values(parsed, defaults)
                if isinstance(parsed, InputProblem):
                    if not self._problem(parsed):
                        return
                    continue
                try:
                    state = self._store.admit(parsed)
                except (ValueError, RecursionError) as exc:
                    # The reader refuses every line known to break re-encoding; this is the net for one it missed:
                    # one line's error, never the run's end.
                    problem = InputProblem(parsed.line or 0, parsed.index, parsed.custom_id, None, f"unusable: {exc}")
                    if not self._problem(problem):
                        return
                    continue
                if state in ("new", "pending"):
                    yield parsed, state
                elif state == "duplicate":
                    if not self._problem(InputProblem.duplicate_of(parsed)):
                        return
                elif state == "changed":
                    self.changed = (
                        f"line {parsed.line}: request {parsed.custom_id!r} differs from the one this job already "
                        "has; the input changed since the last run. Use --restart to start over (results so far "
                        "are discarded)."
                    )
                    return

    def _note_own_values(self, item: RequestItem, defaults: Defaults) -> None:
        params = item.params
        if defaults.model is not None and params.get("model") != defaults.model:
            self.kept_own["--model"] += 1
        if defaults.max_tokens is not None:
            own = params.get("max_completion_tokens", params.get("max_tokens"))
            if own != defaults.max_tokens:
                self.kept_own["--max-tokens"] += 1

    def kept_own_note(self) -> str | None:
        """A sentence naming the flags that lines overrode with their own values, or None."""
        if not self.kept_own:
            return None
        parts = [
            f"{flag} did not apply to {count:,} line(s) that set their own value"
            for flag, count in self.kept_own.items()
        ]
        return "note: " + "; ".join(parts) + " (a line's own value wins over the command line's default)"

    def _problem(self, problem: InputProblem) -> bool:
        """Record a bad line; False when the input no longer matches the stored job (stop reading)."""
        try:
            new = self._store.admit_problem(problem)
        except JobMismatchError as exc:
            self.changed = str(exc)
            return False
        if new:
            self._on_problem(problem)
        return True
