"""Deterministic answer text: seeded per prompt, tagged with the prompt tag, capped by max_tokens."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sluicegate.emulator.prompt import count_text, prompt_tag

if TYPE_CHECKING:
    from sluicegate.emulator.state import EmulatorState

_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo")
_BITS = len(_WORDS).bit_length()


def _pick(rng: random.Random) -> str:
    """`rng.choice(_WORDS)` without its generic layers: the same draws from the generator, the same word."""
    r = rng.getrandbits(_BITS)
    while r >= len(_WORDS):
        r = rng.getrandbits(_BITS)
    return _WORDS[r]


def _slow_pick(rng: random.Random) -> str:
    return rng.choice(_WORDS)


def _pick_matches_choice() -> bool:
    a, b = random.Random(20260101), random.Random(20260101)
    return all(_pick(a) == b.choice(_WORDS) for _ in range(512)) and a.random() == b.random()


# Answers must stay what rng.choice gives; should a Python release draw differently, the generic path is kept.
_choose = _pick if _pick_matches_choice() else _slow_pick


@dataclass(frozen=True, slots=True)
class Generated:
    """One generated answer."""

    text: str
    output_tokens: int
    stop_reason: str
    stop_sequence: str | None


def generate(state: EmulatorState, params: Mapping[str, Any]) -> Generated:
    """The answer for `params`: same prompt and seed, same text."""
    tag = prompt_tag(params)
    cfg = state.config
    seed = int(hashlib.sha256(f"{cfg.seed}:{tag}".encode()).hexdigest()[:12], 16)
    rng = random.Random(seed)
    target = rng.randint(cfg.min_output_tokens, max(cfg.min_output_tokens, cfg.max_output_tokens))
    max_tokens = int(params.get("max_tokens", target))
    if max_tokens == 0:
        # A cache pre-warm: the prompt is processed (and cached), nothing is generated.
        return Generated("", 0, "max_tokens", None)
    budget = min(target, max_tokens)
    words = [f"[{tag}]"]
    # Bytes of " ".join(words), kept incrementally (the words are ASCII); tokens = ceil(bytes / 4) as count_text.
    # Words are added while the text stays within the budget (ceil(size / 4) <= budget, i.e. size <= 4 * budget);
    # the first word that would exceed it is drawn and dropped. The tag always stays: the text must name its prompt.
    size = len(words[0])
    limit = 4 * budget
    choose = _choose
    while True:
        word = choose(rng)
        if size + 1 + len(word) > limit:
            break
        words.append(word)
        size += 1 + len(word)
    text = " ".join(words) + " " if len(words) == 1 else " ".join(words)
    tokens = max(1, min(count_text(text), max_tokens))
    stop_reason, stop_sequence = ("max_tokens" if max_tokens < target else "end_turn"), None
    for seq in params.get("stop_sequences") or ():
        if isinstance(seq, str) and seq and seq in text[len(tag) + 3 :]:
            cut = text.index(seq, len(tag) + 3)
            text, stop_reason, stop_sequence = text[:cut], "stop_sequence", seq
            tokens = max(1, count_text(text))
            break
    return Generated(text, tokens, stop_reason, stop_sequence)
