"""Prompt-cache warm-up: shared-prefix detection, breakpoint placement and the online primer gate."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest

from sluicegate._events import RequestAdmitted, RequestCompleted, ResponseStarted
from sluicegate._models import RequestItem, Result
from sluicegate.jobs.reader import Defaults
from sluicegate.jobs.tables import TableSpec
from sluicegate.jobs.warmup import (
    OnlineWarmup,
    SharedPrefixes,
    has_breakpoints,
    min_cacheable_tokens,
    place_breakpoint,
)

MODEL = "claude-sonnet-4-5"  # caches from 1,024 tokens
LONG = "shared policy text " * 400  # about 2,000 tokens
OTHER = "another long policy " * 400


def _params(question: str, system: Any = LONG, **extra: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": question}]
    return {"model": MODEL, "max_tokens": 10, "system": system, "messages": messages, **extra}


def _scan(*requests: Mapping[str, Any], provider: Any = "anthropic") -> SharedPrefixes:
    found = SharedPrefixes(provider)
    for params in requests:
        found.add(params)
    return found


def test_a_shared_system_prompt_gets_a_breakpoint_at_its_end() -> None:
    """Two requests sharing a long system string: each gets it as a block with cache_control, the question untouched."""
    found = _scan(_params("a"), _params("b"))
    params, group = found.prepare(_params("a"), "5m")
    assert group is not None
    assert params["system"] == [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}]
    assert params["messages"] == [{"role": "user", "content": "a"}]
    assert found.prepare(_params("b"), "1h")[1] == group
    assert found.prepare(_params("b"), "1h")[0]["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}


def test_unshared_short_and_model_specific_prefixes_are_left_alone() -> None:
    """A prefix only one request has, one below the model's minimum, or shared across models groups nothing."""
    found = _scan(_params("a"), _params("b", system=OTHER), _params("c", system="short"), _params("d", system="short"))
    assert found.prepare(_params("a"), "5m") == (_params("a"), None)
    assert found.prepare(_params("c", system="short"), "5m")[1] is None
    other_model = _scan(_params("a"), {**_params("b"), "model": "claude-opus-4-1"})
    assert other_model.shared == 0
    assert min_cacheable_tokens("claude-haiku-4-5-20251001") == 4096
    assert min_cacheable_tokens("unknown-model") == 1024


def test_the_longest_shared_prefix_wins_including_leading_message_blocks() -> None:
    """Requests sharing a system prompt and a long first document block get the breakpoint after the document."""
    doc = {"type": "text", "text": OTHER}

    def with_doc(q: str) -> dict[str, Any]:
        return _params("", messages=[{"role": "user", "content": [doc, {"type": "text", "text": q}]}])

    found = _scan(with_doc("a"), with_doc("b"), _params("c"))
    params, _ = found.prepare(with_doc("a"), "5m")
    assert params["messages"][0]["content"][0] == {**doc, "cache_control": {"type": "ephemeral"}}
    assert params["system"] == LONG  # the earlier shared prefix is read through the later breakpoint
    assert found.prepare(_params("c"), "5m")[0]["system"][0]["cache_control"] == {"type": "ephemeral"}


def test_inputs_that_place_their_own_breakpoints_are_not_rewritten() -> None:
    """A block with cache_control or a top-level cache_control means the user chose: params stay as given, but
    the request is still grouped (and so primed)."""
    own = _params("a", system=[{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}])
    auto = _params("b", cache_control={"type": "ephemeral"})
    assert has_breakpoints(own)
    assert has_breakpoints(auto)
    assert not has_breakpoints(_params("c"))
    found = _scan(own, auto)
    assert found.prepare(own, "5m")[0] is own
    assert found.prepare(own, "5m")[1] == found.prepare(auto, "5m")[1] is not None


def test_openai_requests_are_grouped_but_never_given_cache_control() -> None:
    """OpenAI caches prefixes itself: a shared system turn groups the requests and the params stay as they are."""

    def chat(q: str) -> dict[str, Any]:
        return {"model": "gpt-4o", "messages": [{"role": "system", "content": LONG}, {"role": "user", "content": q}]}

    found = _scan(chat("a"), chat("b"), provider="openai")
    params, group = found.prepare(chat("a"), "5m")
    assert group is not None
    assert params == chat("a")


@pytest.mark.parametrize(
    ("where", "path"),
    [(("tools", 1), ("tools", 1)), (("system", 0), ("system", 0)), (("messages", 0, 1), ("messages", 0, "content", 1))],
)
def test_place_breakpoint_copies_only_the_path(where: tuple[Any, ...], path: tuple[Any, ...]) -> None:
    """The block at `where` gets cache_control in a copy; the original params are unchanged."""
    params: dict[str, Any] = {
        "tools": [{"name": "a"}, {"name": "b"}],
        "system": [{"type": "text", "text": "s"}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}, {"type": "text", "text": "y"}]}],
    }
    placed = place_breakpoint(params, where, "1h")
    node: Any = placed
    original: Any = params
    for step in path:
        node, original = node[step], original[step]
    assert node["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert "cache_control" not in original


@pytest.mark.anyio
async def test_the_gate_streams_the_primer_and_holds_the_rest_until_its_answer_starts() -> None:
    """The first request of a group goes out alone and streamed; nothing more is released until its answer has
    started (not ended), then the rest flow unstreamed without waiting (one primer per group)."""
    requests = [RequestItem(i, f"r{i}", _params(f"q{i}")) for i in range(4)]
    warm = OnlineWarmup(_scan(*(r.params for r in requests)))
    released: list[RequestItem] = []
    gate = warm.gate(requests)

    async def pull() -> None:
        async for item in gate:
            released.append(item)

    async with anyio.create_task_group() as tg:
        tg.start_soon(pull)
        await anyio.wait_all_tasks_blocked()
        assert [item.custom_id for item in released] == ["r0"]
        warm(RequestAdmitted(at=0.0, index=0, custom_id="r0", attempt=1, input_tokens_estimate=1,
                             output_tokens_reserved=1, in_flight=1))  # fmt: skip
        await anyio.wait_all_tasks_blocked()
        assert len(released) == 1  # sent is not started
        warm(ResponseStarted(at=0.0, index=0, custom_id="r0", attempt=1))
    assert [item.custom_id for item in released] == ["r0", "r1", "r2", "r3"]
    assert [item.params.get("stream") for item in released] == [True, None, None, None]
    assert warm.primers == 1


@pytest.mark.anyio
async def test_a_primer_that_fails_before_starting_releases_the_rest() -> None:
    """A primer that ends in an error without an answer started (e.g. a 400) does not hold the input forever."""
    requests = [RequestItem(i, f"r{i}", _params(f"q{i}")) for i in range(3)]
    warm = OnlineWarmup(_scan(*(r.params for r in requests)))
    released: list[str] = []

    async def pull() -> None:
        async for item in warm.gate(requests):
            released.append(item.custom_id)

    async with anyio.create_task_group() as tg:
        tg.start_soon(pull)
        await anyio.wait_all_tasks_blocked()
        assert released == ["r0"]
        warm(RequestCompleted(at=0.0, result=Result(index=0, custom_id="r0")))
    assert released == ["r0", "r1", "r2"]


def test_a_table_s_rows_are_scanned_through_its_template(tmp_path: Path) -> None:
    """A CSV whose rows share the --system prompt: scanned through the template, every row is in one group, so a
    table job is warmed up like a JSONL one."""
    inp = tmp_path / "tickets.csv"
    inp.write_text("id,body\n" + "".join(f"T{i},printer {i} is on fire\n" for i in range(5)))
    spec = TableSpec(template="Summarise: {body}", id_column="id")
    found = SharedPrefixes.scan(inp, Defaults(model=MODEL, max_tokens=10, system=LONG), "anthropic", spec)
    assert found.shared == 1
    row = _params("Summarise: printer 0 is on fire")
    params, group = found.prepare(row, "5m")
    assert group is not None
    assert params["system"][0]["cache_control"] == {"type": "ephemeral"}
