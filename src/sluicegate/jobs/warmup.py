"""Prompt-cache warm-up: find the prefixes requests share, mark their end for caching, and send one of each first.

A cache entry becomes readable only once the response that writes it has started, so N requests sent together
with a shared prefix pay N cache writes. Warm-up turns that into one write and N-1 reads:

- `SharedPrefixes.scan` reads the input once and counts, for every request, the prefixes it could cache: the
  prompt cut after each block in cache order (tools, system, then message content blocks; never the last
  block). Only prefixes at least as long as the model's minimum cacheable length count. Memory is bounded:
  past `max_keys` distinct prefixes, new ones are not counted (they then stay uncached).
- Each request's group is its longest prefix that at least two requests share. For Anthropic a `cache_control`
  breakpoint is placed on that prefix's last block, unless the request already places breakpoints (the user's
  own choice wins). OpenAI caches prefixes by itself; its requests are only grouped.
- `OnlineWarmup` gates the stream of requests: the first request of a group goes alone, streamed, and the rest of
  the input waits until its answer has started (the engine's `ResponseStarted`, at the stream's first event): the
  entry is readable from then on, so the fan-out does not wait for the primer's whole answer. A primer that ends
  without starting (an error) releases the rest too; they then write the prefix themselves.

The batch route uses the same groups with a 1-hour TTL and a one-request priming batch per group (see
`batch_runner.py`): a batch does not read what an online request wrote.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio

from .._events import RequestCompleted, ResponseStarted
from .._models import RequestItem
from ..tokens import heuristic_tokens
from .reader import Defaults, InputProblem, iter_lines, read_requests
from .tables import TableSpec, table_requests

__all__ = ["Boundary", "OnlineWarmup", "SharedPrefixes", "has_breakpoints", "min_cacheable_tokens", "place_breakpoint"]

# The shortest prefix each model caches (Anthropic prompt-caching docs, 2026; longest matching id prefix wins).
# A shorter prefix is silently not cached, so grouping on it would only cost a primer's round trip.
_MIN_TOKENS: tuple[tuple[str, int], ...] = (
    ("claude-opus-5", 512),
    ("claude-fable-5", 512),
    ("claude-opus-4-8", 1024),
    ("claude-opus-4-7", 4096),
    ("claude-opus-4-6", 4096),
    ("claude-opus-4-5", 4096),
    ("claude-haiku-4-5", 4096),
    ("claude-sonnet-4-6", 2048),
    ("claude-sonnet-4-5", 1024),
    ("claude-opus-4-1", 1024),
    ("gpt-", 1024),  # OpenAI caches prompts from 1,024 tokens
)
_DEFAULT_MIN = 1024
_MAX_BLOCKS = 64  # boundaries looked at per request: shared prefixes sit at the front


def min_cacheable_tokens(model: str) -> int:
    """The model's minimum cacheable prefix in tokens (1,024 when unknown)."""
    best = max((p for p, _ in _MIN_TOKENS if model.startswith(p)), key=len, default=None)
    return dict(_MIN_TOKENS)[best] if best is not None else _DEFAULT_MIN


@dataclass(frozen=True, slots=True)
class Boundary:
    """The prompt cut after one block: its key (model and content so far), estimated tokens and where it is."""

    key: str
    tokens: int
    where: tuple[Any, ...]  # ("tools", i) | ("system", i) | ("messages", m, b); b is None for string content


def _blocks(params: Mapping[str, Any], provider: str) -> list[tuple[tuple[Any, ...], Any]]:
    """(where, block) in cache order: tools, system, then message content blocks. A string system or content is
    the text block the API reads it as, so both spellings of one prompt share their prefixes."""
    out: list[tuple[tuple[Any, ...], Any]] = []
    for i, tool in enumerate(params.get("tools") or []):
        out.append((("tools", i), tool))
    system = params.get("system")
    if isinstance(system, str) and system:
        out.append((("system", None), {"type": "text", "text": system}))
    elif isinstance(system, list):
        out.extend((("system", i), block) for i, block in enumerate(system))
    for m, message in enumerate(params.get("messages") or []):
        if not isinstance(message, Mapping):
            break
        content, role = message.get("content"), message.get("role")
        if provider == "openai":
            out.append((("messages", m, None), {"role": role, "content": content}))
        elif isinstance(content, list):
            out.extend((("messages", m, b), {"role": role, "block": block}) for b, block in enumerate(content))
        else:
            out.append((("messages", m, None), {"role": role, "block": {"type": "text", "text": content}}))
    return out


def _strip(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _strip(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def boundaries(params: Mapping[str, Any], provider: str) -> list[Boundary]:
    """Every cacheable cut of this request's prompt long enough for its model, shortest first."""
    model = str(params.get("model") or "")
    least = min_cacheable_tokens(model)
    blocks = _blocks(params, provider)[:_MAX_BLOCKS]
    digest = hashlib.sha256(model.encode())
    if provider == "anthropic":  # changing tool_choice or thinking misses the cached messages
        digest.update(json.dumps([params.get("tool_choice"), params.get("thinking")], sort_keys=True).encode())
    out: list[Boundary] = []
    tokens = 0
    for where, block in blocks[:-1]:  # the whole prompt is not a shared prefix
        piece = json.dumps(_strip(block), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
        digest.update(piece.encode())
        digest.update(b"\x00")
        tokens += heuristic_tokens({"system": piece})
        if tokens >= least:
            out.append(Boundary(digest.copy().hexdigest()[:32], tokens, where))
    return out


def has_breakpoints(params: Mapping[str, Any]) -> bool:
    """The request places its own cache breakpoints (or asks for automatic caching)."""
    if "cache_control" in params:
        return True
    found: list[Any] = list(params.get("tools") or [])
    if isinstance(params.get("system"), list):
        found += params["system"]
    for message in params.get("messages") or []:
        if isinstance(message, Mapping) and isinstance(message.get("content"), list):
            found += message["content"]
    return any(isinstance(block, Mapping) and "cache_control" in block for block in found)


def place_breakpoint(params: Mapping[str, Any], where: tuple[Any, ...], ttl: Literal["5m", "1h"]) -> dict[str, Any]:
    """A copy of `params` with `cache_control` on the block at `where` (only the path to it is copied)."""
    control = {"type": "ephemeral"} if ttl == "5m" else {"type": "ephemeral", "ttl": ttl}
    out = dict(params)
    section = where[0]
    if section == "tools":
        tools = list(out["tools"])
        tools[where[1]] = {**tools[where[1]], "cache_control": control}
        out["tools"] = tools
    elif section == "system":
        if where[1] is None:
            out["system"] = [{"type": "text", "text": out["system"], "cache_control": control}]
        else:
            system = list(out["system"])
            system[where[1]] = {**system[where[1]], "cache_control": control}
            out["system"] = system
    else:
        messages = list(out["messages"])
        message = dict(messages[where[1]])
        content = message["content"]
        if where[2] is None:
            message["content"] = [{"type": "text", "text": content, "cache_control": control}]
        else:
            blocks = list(content)
            blocks[where[2]] = {**blocks[where[2]], "cache_control": control}
            message["content"] = blocks
        messages[where[1]] = message
        out["messages"] = messages
    return out


@dataclass
class SharedPrefixes:
    """How many requests of an input share each cacheable prefix; each request's group is its longest shared one."""

    provider: Literal["anthropic", "openai"]
    counts: dict[str, int] = field(default_factory=dict)
    max_keys: int = 200_000

    def add(self, params: Mapping[str, Any]) -> None:
        for cut in boundaries(params, self.provider):
            seen = self.counts.get(cut.key)
            if seen is not None:
                self.counts[cut.key] = seen + 1
            elif len(self.counts) < self.max_keys:
                self.counts[cut.key] = 1

    @classmethod
    def scan(
        cls,
        path: Path,
        defaults: Defaults,
        provider: Literal["anthropic", "openai"],
        table: TableSpec | None = None,
    ) -> SharedPrefixes:
        """Count the prefixes of every valid request of an input file: JSONL request lines, or a table's rows made
        into requests by its template (bad lines are the run's to report)."""
        found = cls(provider)
        if table is not None:
            found.add_all(table_requests(path, table, defaults, provider))
            return found
        with path.open("rb") as f:
            found.add_all(read_requests(iter_lines(f), defaults=defaults, provider=provider))
        return found

    def add_all(self, parsed: Iterable[RequestItem | InputProblem]) -> None:
        for item in parsed:
            if not isinstance(item, InputProblem):
                self.add(item.params)

    def group(self, params: Mapping[str, Any]) -> Boundary | None:
        """The longest prefix this request shares with another, or None."""
        best = None
        for cut in boundaries(params, self.provider):
            if self.counts.get(cut.key, 0) >= 2:
                best = cut
        return best

    def prepare(self, params: Mapping[str, Any], ttl: Literal["5m", "1h"]) -> tuple[Mapping[str, Any], str | None]:
        """(the params to send, their group key): a breakpoint at the shared prefix's end for Anthropic, unless
        the request places its own."""
        cut = self.group(params)
        if cut is None:
            return params, None
        if self.provider == "anthropic" and not has_breakpoints(params):
            return place_breakpoint(params, cut.where, ttl), cut.key
        return params, cut.key

    def expected(self, requests: Iterable[Mapping[str, Any]]) -> tuple[dict[str, int], dict[str, int]]:
        """Cache tokens warm-up should bring, per model, over these requests (the ones counted): (read, written).
        The first request of each group writes its prefix, the others read it."""
        read: dict[str, int] = {}
        written: dict[str, int] = {}
        seen: set[str] = set()
        for params in requests:
            cut = self.group(params)
            if cut is None:
                continue
            model = str(params.get("model") or "?")
            into = read if cut.key in seen else written
            into[model] = into.get(model, 0) + cut.tokens
            seen.add(cut.key)
        return read, written

    @property
    def shared(self) -> int:
        """How many prefixes at least two requests share."""
        return sum(1 for n in self.counts.values() if n >= 2)


class OnlineWarmup:
    """Gates a run's requests so each shared prefix is written once before the requests that read it are sent.

    Pass the instance as an engine sink (it watches for the primers' results) and send `gate(items)`.
    """

    def __init__(self, prefixes: SharedPrefixes) -> None:
        self._prefixes = prefixes
        self._primed: set[str] = set()
        self._waiting: dict[str, anyio.Event] = {}  # primer custom_id -> set when its answer has started
        self.primers = 0

    def __call__(self, event: object) -> None:
        if isinstance(event, ResponseStarted):
            custom_id = event.custom_id
        elif isinstance(event, RequestCompleted):
            custom_id = event.result.custom_id
        else:
            return
        found = self._waiting.pop(custom_id, None)
        if found is not None:
            found.set()

    async def gate(self, items: AsyncIterator[RequestItem] | Iterable[RequestItem]) -> AsyncIterator[RequestItem]:
        """The items with their breakpoints placed; the first of each group is streamed and followed by a wait for
        its answer to start."""
        async for item in _aiter(items):
            params, group = self._prefixes.prepare(item.params, "5m")
            prepared = item if params is item.params else RequestItem(item.index, item.custom_id, params, item.line)
            if group is None or group in self._primed:
                yield prepared
                continue
            self._primed.add(group)
            started = self._waiting[item.custom_id] = anyio.Event()
            self.primers += 1
            # Streamed, so its start is visible: an unstreamed answer arrives whole, after the entry became readable.
            yield RequestItem(item.index, item.custom_id, {**prepared.params, "stream": True}, item.line)
            await started.wait()  # the engine keeps running the primer; the next item waits for its start


async def _aiter(items: AsyncIterator[RequestItem] | Iterable[RequestItem]) -> AsyncIterator[RequestItem]:
    if isinstance(items, AsyncIterator):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item
