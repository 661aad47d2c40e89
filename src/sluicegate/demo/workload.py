"""Generated documents and the correctness check: every emulated answer must begin with its own prompt's tag."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sluicegate.demo.peers import Outcome
from sluicegate.emulator.prompt import count_tokens, prompt_tag

__all__ = ["Tally", "accepted_tags", "average_input_tokens", "make_documents", "tally"]

_WORDS = (
    "revenue",
    "quarter",
    "growth",
    "customer",
    "contract",
    "renewal",
    "pipeline",
    "forecast",
    "margin",
    "churn",
    "region",
    "product",
    "launch",
    "support",
    "ticket",
    "latency",
    "incident",
    "review",
    "budget",
    "hiring",
)


def make_documents(
    n: int,
    *,
    seed: int = 0,
    words: int = 120,
    max_tokens: int = 256,
    model: str = "claude-haiku-4-5",
    prefix: str = "doc",
) -> list[dict[str, Any]]:
    """`n` distinct "summarize this document" requests (Messages params plus a `custom_id`)."""
    rng = random.Random(seed)
    docs: list[dict[str, Any]] = []
    for i in range(n):
        body = " ".join(rng.choice(_WORDS) for _ in range(words))
        docs.append(
            {
                "custom_id": f"{prefix}-{i:07d}",
                "model": model,
                "max_tokens": max_tokens,
                "messages": [{"role": "user", "content": f"Summarize document {i} in two sentences:\n\n{body}"}],
            }
        )
    return docs


def average_input_tokens(docs: Sequence[Mapping[str, Any]]) -> float:
    """Mean input tokens under the emulator's tokenizer rule."""
    if not docs:
        return 0.0
    return sum(count_tokens({k: v for k, v in d.items() if k != "custom_id"}) for d in docs) / len(docs)


@dataclass(frozen=True, slots=True)
class Tally:
    """Per-system correctness: answers that belong to their input, errors, wrong answers, missing outcomes."""

    ok: int
    failed: int
    wrong: int
    missing: int


def accepted_tags(doc: Mapping[str, Any]) -> set[str]:
    """Tags of the prompt as written and as text blocks: some libraries send a string content as blocks."""
    as_blocks = [
        {**m, "content": [{"type": "text", "text": m["content"]}]} if isinstance(m.get("content"), str) else m
        for m in doc.get("messages", [])
    ]
    return {prompt_tag(doc), prompt_tag({**doc, "messages": as_blocks})}


def tally(docs: Sequence[Mapping[str, Any]], outcomes: Mapping[str, Outcome]) -> Tally:
    """Check every document's outcome: its text must start with `[<tag of its own prompt>] `."""
    ok = failed = wrong = missing = 0
    for doc in docs:
        outcome = outcomes.get(str(doc["custom_id"]))
        if outcome is None:
            missing += 1
        elif outcome.text is None:
            failed += 1
        elif outcome.text[1:9] in accepted_tags(doc) and outcome.text.startswith("["):
            ok += 1
        else:
            wrong += 1
    return Tally(ok, failed, wrong, missing)
