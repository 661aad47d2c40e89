"""Pure functions of a request's prompt: the emulator's tokenizer rule, prompt blocks for caching, the prompt tag.

The tokenizer rule (documented, deterministic, and used identically by usage, count_tokens, the rate-limit
buckets and prompt caching):

- a text costs ceil(utf8_bytes / 4) tokens (0 for the empty string);
- each content block, system block and tool costs 1 more for its framing;
- each message costs 3 more for its role framing (charged on its first block);
- a tool costs the text rule applied to its canonical JSON; an image or document block costs a flat 1,000;
- the request costs 3 more (charged on its first block).

Blocks are listed in the order the API caches them: tools, then system, then messages. The prefix key of
block i is a hash of blocks 0..i without their `cache_control`, so two requests share a cache entry exactly
when their prefixes up to the breakpoint are identical.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["PromptBlock", "count_text", "count_tokens", "prompt_blocks", "prompt_tag"]

REQUEST_OVERHEAD = 3
MESSAGE_OVERHEAD = 3
BLOCK_OVERHEAD = 1
FLAT_MEDIA_TOKENS = 1000


@dataclass(frozen=True, slots=True)
class PromptBlock:
    """One cacheable unit of the prompt, with its token cost and the hash of the prefix ending at it."""

    section: str  # "tools" | "system" | "messages"
    tokens: int
    cache_control: Mapping[str, Any] | None
    prefix_key: str


def count_text(text: str) -> int:
    return -(-len(text.encode("utf-8")) // 4)


# One encoder built once: json.dumps with these arguments builds a new one per call (same output).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _canonical(value: Any) -> str:
    return _CANONICAL.encode(value)


def _without_cache_control(block: Any) -> Any:
    if isinstance(block, Mapping):
        return {k: v for k, v in block.items() if k != "cache_control"}
    return block


def _block_tokens(block: Any) -> int:
    if isinstance(block, str):
        return count_text(block)
    if not isinstance(block, Mapping):
        return count_text(_canonical(block))
    kind = block.get("type")
    if kind == "text":
        return count_text(str(block.get("text", "")))
    if kind in ("image", "document"):
        return FLAT_MEDIA_TOKENS
    if kind == "tool_result":
        content = block.get("content")
        if isinstance(content, str):
            return count_text(content)
        if isinstance(content, Sequence):
            return sum(_block_tokens(b) for b in content)
        return 0
    if kind == "tool_use":
        return count_text(_canonical(block.get("input", {}))) + count_text(str(block.get("name", "")))
    return count_text(_canonical(_without_cache_control(block)))


def prompt_blocks(params: Mapping[str, Any], *, keyed: bool = True) -> list[PromptBlock]:
    """The prompt as cacheable blocks in cache order (tools, system, messages), each with its token cost.

    Works for Anthropic Messages params; OpenAI chat params (system/developer turns inside `messages`) follow
    the same rule with no tools section unless given. `keyed=False` skips hashing the prefixes (every
    `prefix_key` is then ""): enough for token counts and breakpoints, which is all most requests need.
    """
    raw: list[tuple[str, Any, int, Any]] = []  # (section, fingerprint value, tokens, cache_control)
    for tool in params.get("tools") or []:
        fp = _without_cache_control(tool)
        cc = tool.get("cache_control") if isinstance(tool, Mapping) else None
        raw.append(("tools", ["tool", fp], count_text(_canonical(fp)) + BLOCK_OVERHEAD, cc))
    system = params.get("system")
    if isinstance(system, str) and system:
        raw.append(("system", ["system", system], count_text(system) + BLOCK_OVERHEAD, None))
    elif isinstance(system, Sequence) and not isinstance(system, str):
        for block in system:
            cc = block.get("cache_control") if isinstance(block, Mapping) else None
            raw.append(("system", ["system", _without_cache_control(block)], _block_tokens(block) + BLOCK_OVERHEAD, cc))
    for message in params.get("messages") or []:
        if not isinstance(message, Mapping):
            continue
        role = message.get("role")
        content = message.get("content")
        blocks: list[Any] = [content] if isinstance(content, str) else list(content or [])
        if not blocks:
            blocks = [""]
        for i, block in enumerate(blocks):
            cc = block.get("cache_control") if isinstance(block, Mapping) else None
            tokens = _block_tokens(block) + BLOCK_OVERHEAD + (MESSAGE_OVERHEAD if i == 0 else 0)
            fp = [role, i, _without_cache_control(block) if not isinstance(block, str) else block]
            raw.append(("messages", fp, tokens, cc))
    if not keyed:
        return [
            PromptBlock(
                section=section,
                tokens=tokens + (REQUEST_OVERHEAD if n == 0 else 0),
                cache_control=cc if isinstance(cc, Mapping) else None,
                prefix_key="",
            )
            for n, (section, _, tokens, cc) in enumerate(raw)
        ]
    out: list[PromptBlock] = []
    digest = hashlib.sha256(_canonical(params.get("model", "")).encode())
    for n, (section, fp, tokens, cc) in enumerate(raw):
        digest.update(_canonical(fp).encode())
        digest.update(b"\x00")
        out.append(
            PromptBlock(
                section=section,
                tokens=tokens + (REQUEST_OVERHEAD if n == 0 else 0),
                cache_control=cc if isinstance(cc, Mapping) else None,
                prefix_key=digest.copy().hexdigest()[:32],
            )
        )
    return out


def count_tokens(params: Mapping[str, Any], blocks: list[PromptBlock] | None = None) -> int:
    """Total input tokens of a request under the emulator's rule (what count_tokens returns).

    `blocks`, when the caller already has them, are this request's `prompt_blocks` (keyed or not).
    """
    if blocks is None:
        blocks = prompt_blocks(params, keyed=False)
    return sum(b.tokens for b in blocks) if blocks else REQUEST_OVERHEAD


def prompt_tag(params: Mapping[str, Any]) -> str:
    """8 hex characters identifying the prompt (system + messages); every emulated answer begins `[tag]`.

    Tests and benchmarks use it to prove that each result belongs to its own input.
    """
    key = {"system": params.get("system"), "messages": params.get("messages")}
    return hashlib.sha256(_canonical(key).encode("utf-8")).hexdigest()[:8]
