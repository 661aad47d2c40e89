"""Reader: every input format, every named error, defaults, streaming with bounded memory."""

from __future__ import annotations

import io
import json
import tracemalloc
from collections.abc import Iterator
from typing import Any, Literal

import pytest

from sluicegate._models import RequestItem
from sluicegate.jobs.reader import (
    Defaults,
    InputProblem,
    OversizeLine,
    iter_lines,
    params_fingerprint,
    read_requests,
)

MSG = [{"role": "user", "content": "hi"}]
D = Defaults(model="m-default", max_tokens=64)


def one(
    line: str | bytes, *, provider: Literal["anthropic", "openai"] = "anthropic", defaults: Defaults = D
) -> RequestItem | InputProblem:
    """Parse a single line."""
    out = list(read_requests([line], defaults=defaults, provider=provider))
    assert len(out) == 1
    return out[0]


def item(line: str, **kw: Any) -> RequestItem:
    """Parse a line that must be valid."""
    got = one(line, **kw)
    assert isinstance(got, RequestItem), got
    return got


def problem(line: str | bytes, **kw: Any) -> InputProblem:
    """Parse a line that must be invalid."""
    got = one(line, **kw)
    assert isinstance(got, InputProblem), got
    return got


def test_batch_format_passes_params_and_fills_defaults() -> None:
    """A Message Batches line keeps its params; missing model/max_tokens/system come from the defaults."""
    got = item(json.dumps({"custom_id": "a-1", "params": {"messages": MSG, "temperature": 0.5}}))
    assert got.custom_id == "a-1"
    assert got.params == {"messages": MSG, "temperature": 0.5, "model": "m-default", "max_tokens": 64}
    assert (got.index, got.line) == (0, 1)
    own = item(json.dumps({"custom_id": "b", "params": {"model": "x", "max_tokens": 5, "messages": MSG}}))
    assert own.params["model"] == "x"
    assert own.params["max_tokens"] == 5
    sys_default = item(
        json.dumps({"custom_id": "c", "params": {"messages": MSG}}),
        defaults=Defaults(model="m", max_tokens=1, system="S"),
    )
    assert sys_default.params["system"] == "S"


def test_shorthand_expands_prompt_and_passes_other_params() -> None:
    """The shorthand becomes a one-message request; system, model and other Messages params pass through."""
    got = item(json.dumps({"id": "q7", "prompt": "hello", "system": "be brief", "temperature": 0, "max_tokens": 9}))
    assert got.custom_id == "q7"
    assert got.params == {
        "messages": [{"role": "user", "content": "hello"}],
        "system": "be brief",
        "temperature": 0,
        "max_tokens": 9,
        "model": "m-default",
    }


def test_shorthand_for_openai_makes_system_a_leading_message() -> None:
    """With the openai provider, system (from the line or the defaults) becomes a leading system message."""
    got = item(json.dumps({"id": "o", "prompt": "p", "system": "S"}), provider="openai", defaults=Defaults(model="g"))
    assert got.params == {
        "model": "g",
        "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "p"}],
    }
    dflt = item(
        json.dumps({"id": "o", "prompt": "p"}),
        provider="openai",
        defaults=Defaults(model="g", system="D", max_tokens=7),
    )
    assert dflt.params["messages"][0] == {"role": "system", "content": "D"}
    assert dflt.params["max_completion_tokens"] == 7


def test_openai_batch_line() -> None:
    """An OpenAI batch line becomes its body, with defaults filled; max_tokens is optional for openai."""
    line = {"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": MSG}}
    got = item(json.dumps(line), provider="openai", defaults=Defaults(model="g"))
    assert got.custom_id == "r1"
    assert got.params == {"messages": MSG, "model": "g"}


def test_blank_lines_skipped_and_positions_counted() -> None:
    """Blank lines are skipped: index counts non-blank lines from 0, line counts physical lines from 1."""
    lines = [
        "\n",
        json.dumps({"id": "a", "prompt": "x"}) + "\n",
        "   \n",
        "not json\n",
        json.dumps({"id": "b", "prompt": "y"}),
    ]
    out = list(read_requests(lines, defaults=D))
    assert [(o.index, o.line) for o in out] == [(0, 2), (1, 4), (2, 5)]
    assert isinstance(out[1], InputProblem)


def test_bytes_lines_and_bom() -> None:
    """Lines may be bytes (a file opened in binary); a UTF-8 BOM on the first line is ignored."""
    got = item(b"\xef\xbb\xbf" + json.dumps({"id": "a", "prompt": "caf\u00e9"}).encode() + b"\r\n")  # type: ignore[arg-type]
    assert got.custom_id == "a"
    bad = problem(b'{"id": "a", "prompt": "\xff"}\n')
    assert "UTF-8" in bad.message


P = {"model": "m", "max_tokens": 5, "messages": MSG}


@pytest.mark.parametrize(
    ("line", "provider", "field", "words", "custom_id"),
    [
        ('{"id": "a", "prompt": ', "anthropic", None, "not valid JSON", None),
        ('{"id": "a", "prompt": "x", "temperature": NaN}', "anthropic", None, "NaN is not a JSON number", None),
        ('{"id": "a", "prompt": "x"} {"id": "b"}', "anthropic", None, "Extra data", None),
        ("[1, 2]", "anthropic", None, "expected a JSON object, got an array", None),
        ('"text"', "anthropic", None, "got a string", None),
        ('{"foo": 1}', "anthropic", None, "unknown line format", None),
        ('{"prompt": "x"}', "anthropic", "id", "missing 'id'", None),
        ('{"id": "", "prompt": "x"}', "anthropic", "id", "empty", None),
        ('{"id": 5, "prompt": "x"}', "anthropic", "id", "must be a string", None),
        ('{"id": "has space", "prompt": "x"}', "anthropic", "id", "1-64 characters", None),
        (json.dumps({"id": "x" * 65, "prompt": "x"}), "anthropic", "id", "1-64 characters", None),
        ('{"custom_id": "a"}', "anthropic", "params", "missing 'params'", None),
        ('{"params": {}}', "anthropic", "custom_id", "missing 'custom_id'", None),
        ('{"custom_id": "a", "params": [1]}', "anthropic", "params", "must be an object", "a"),
        (
            '{"custom_id": "a", "params": {"max_tokens": 5, "messages": []}}',
            "anthropic",
            "params.model",
            "missing 'model'",
            "a",
        ),
        (
            '{"custom_id": "a", "params": {"model": 3, "max_tokens": 5}}',
            "anthropic",
            "params.model",
            "non-empty string",
            "a",
        ),
        (
            '{"custom_id": "a", "params": {"model": "m", "messages": []}}',
            "anthropic",
            "params.max_tokens",
            "missing",
            "a",
        ),
        (
            '{"custom_id": "a", "params": {"model": "m", "max_tokens": 0}}',
            "anthropic",
            "params.max_tokens",
            "positive",
            "a",
        ),
        (
            '{"custom_id": "a", "params": {"model": "m", "max_tokens": true}}',
            "anthropic",
            "params.max_tokens",
            "positive",
            "a",
        ),
        (
            '{"custom_id": "a", "params": {"model": "m", "max_tokens": 1.5}}',
            "anthropic",
            "params.max_tokens",
            "positive",
            "a",
        ),
        (
            '{"custom_id": "a", "params": {"model": "m", "max_tokens": 5}}',
            "anthropic",
            "params.messages",
            "missing 'messages'",
            "a",
        ),
        (
            '{"custom_id": "a", "params": {"model": "m", "max_tokens": 5, "messages": []}}',
            "anthropic",
            "params.messages",
            "non-empty list",
            "a",
        ),
        (
            '{"custom_id": "a", "params": {"model": "m", "max_tokens": 5, "messages": "hi"}}',
            "anthropic",
            "params.messages",
            "non-empty list",
            "a",
        ),
        (
            '{"custom_id": "a", "params": {"model": "m", "max_tokens": 5, "messages": [3]}}',
            "anthropic",
            "params.messages[0]",
            "object",
            "a",
        ),
        (
            '{"custom_id": "a", "params": {"model": "m", "max_tokens": 5, '
            '"messages": [{"role": "system", "content": "x"}]}}',
            "anthropic",
            "params.messages[0].role",
            "one of assistant, user",
            "a",
        ),
        (
            '{"custom_id": "a", "params": {"model": "m", "max_tokens": 5, "messages": [{"role": "user"}]}}',
            "anthropic",
            "params.messages[0].content",
            "missing 'content'",
            "a",
        ),
        (
            '{"custom_id": "a", "params": {"model": "m", "max_tokens": 5, "system": 3, "messages": []}}',
            "anthropic",
            "params.system",
            "string or a list",
            "a",
        ),
        ('{"id": "a", "prompt": 7}', "anthropic", "prompt", "non-empty string", "a"),
        ('{"id": "a", "prompt": ""}', "anthropic", "prompt", "non-empty string", "a"),
        ('{"id": "a", "model": "m"}', "anthropic", "prompt", "missing 'prompt'", "a"),
        ('{"id": "a", "prompt": "x", "model": "m", "max_tokens": -1}', "anthropic", "max_tokens", "positive", "a"),
        ('{"custom_id": "a", "url": "/v1/chat/completions", "body": {}}', "anthropic", None, "openai provider", None),
        (
            '{"custom_id": "a", "method": "GET", "url": "/v1/chat/completions", "body": {}}',
            "openai",
            "method",
            "POST",
            "a",
        ),
        (
            '{"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {}}',
            "openai",
            "url",
            "Chat Completions",
            "a",
        ),
        (
            '{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions"}',
            "openai",
            "body",
            "missing 'body'",
            "a",
        ),
        (
            '{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "g"}}',
            "openai",
            "body.messages",
            "missing",
            "a",
        ),
        (
            '{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", '
            '"body": {"model": "g", "max_tokens": 0, "messages": []}}',
            "openai",
            "body.max_tokens",
            "positive",
            "a",
        ),
        (
            '{"id": "a", "messages": [{"role": "critic", "content": "x"}], "model": "g"}',
            "openai",
            "messages[0].role",
            "developer",
            "a",
        ),
    ],
)
def test_invalid_lines_name_the_field(
    line: str, provider: str, field: str | None, words: str, custom_id: str | None
) -> None:
    """Each kind of bad line becomes a problem naming the line, the field and the reason."""
    got = problem(line, provider=provider, defaults=Defaults())
    assert (got.line, got.index, got.field, got.custom_id) == (1, 0, field, custom_id)
    assert words in got.message


def test_openai_roles_and_tool_call_content() -> None:
    """OpenAI accepts system/developer/tool roles and an assistant turn with only tool_calls."""
    msgs = [
        {"role": "developer", "content": "d"},
        {"role": "user", "content": "u"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "t"}]},
        {"role": "tool", "content": "r", "tool_call_id": "t"},
    ]
    got = item(json.dumps({"custom_id": "a", "params": {"model": "g", "messages": msgs}}), provider="openai")
    assert got.params["messages"] == msgs


def test_json_error_message_gives_position() -> None:
    """A JSON syntax error names where in the line it happened."""
    got = problem('{"id": "a", "prompt": "x",}')
    assert "column 27" in got.message


def test_problem_to_result() -> None:
    """A problem becomes an invalid_request result carrying line and field; a missing id falls back to line:<n>."""
    with_id = InputProblem(line=4, index=3, custom_id="a", field="params.model", message="missing 'model'").to_result()
    line = with_id.to_batch_line()
    assert line["custom_id"] == "a"
    assert line["result"]["type"] == "errored"
    err = line["result"]["error"]["error"]
    assert (err["line"], err["field"], err["type"]) == (4, "params.model", "invalid_request_error")
    no_id = InputProblem(line=9, index=8, custom_id=None, field="id", message="missing 'id'").to_result()
    assert no_id.custom_id == "line:9"
    assert no_id.index == 8
    assert no_id.error is not None
    assert "line:9" in no_id.error.message


def test_oversize_lines() -> None:
    """A line over the byte limit is a problem that gives its size, for str, bytes and the chunked file reader."""
    big = json.dumps({"id": "a", "prompt": "x" * 200})
    got = next(read_requests([big], defaults=D, max_line_bytes=100))
    assert isinstance(got, InputProblem)
    assert f"{len(big)} bytes" in got.message
    stream = io.BytesIO(b'{"id": "s", "prompt": "ok"}\n' + big.encode() + b"\n" + b'{"id": "t", "prompt": "ok"}')
    raw = list(iter_lines(stream, max_line_bytes=100))
    assert raw[1] == OversizeLine(len(big))
    out = list(read_requests(raw, defaults=D, max_line_bytes=100))
    assert [type(o).__name__ for o in out] == ["RequestItem", "InputProblem", "RequestItem"]
    assert (out[1].line, out[1].index) == (2, 1)
    assert f"{len(big)} bytes" in out[1].message  # type: ignore[union-attr]


def test_iter_lines_keeps_lines_at_the_limit() -> None:
    """A line exactly at the limit (with \\n or \\r\\n endings, or none at EOF) is not oversize."""
    data = b"a" * 10 + b"\n" + b"b" * 10 + b"\r\n" + b"c" * 10
    assert list(iter_lines(io.BytesIO(data), max_line_bytes=10)) == [b"a" * 10 + b"\n", b"b" * 10 + b"\r\n", b"c" * 10]
    assert list(iter_lines(io.BytesIO(b"d" * 13 + b"\r\ne"), max_line_bytes=10)) == [OversizeLine(13), b"e"]
    over_by_one = list(read_requests([b'{"id":"a","prompt":"x"}\n'], defaults=D, max_line_bytes=22))
    assert isinstance(over_by_one[0], InputProblem)
    assert "23 bytes" in over_by_one[0].message


def test_fingerprint_stable_and_sensitive() -> None:
    """The fingerprint ignores key order and changes when any value changes."""
    a = params_fingerprint({"model": "m", "messages": MSG, "max_tokens": 5})
    b = params_fingerprint({"max_tokens": 5, "messages": MSG, "model": "m"})
    c = params_fingerprint({"max_tokens": 6, "messages": MSG, "model": "m"})
    assert a == b != c
    assert len(a) == 16
    int(a, 16)


def _lines(n: int) -> Iterator[str]:
    for i in range(n):
        yield f'{{"id": "id-{i}", "prompt": "prompt number {i}"}}\n'


def test_streaming_read_memory_stays_flat() -> None:
    """Reading 20k lines lazily holds only the current line: traced memory does not grow with the count."""
    tracemalloc.start()
    try:
        count = 0
        peak_early = 0
        for got in read_requests(_lines(20_000), defaults=D):
            assert isinstance(got, RequestItem)
            count += 1
            if count == 1_000:
                peak_early = tracemalloc.get_traced_memory()[1]
        peak_late = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 20_000
    assert peak_late < peak_early + 64 * 1024
