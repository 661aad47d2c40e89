"""Hostile input lines: each becomes an item or a named problem, and nothing about one line can stop the reader or
the store (a corpus of known-bad lines, plus hypothesis fuzzing over arbitrary bytes and JSON with surrogates)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluicegate._models import RequestItem
from sluicegate.jobs.reader import Defaults, InputProblem, iter_lines, params_fingerprint, read_requests
from sluicegate.jobs.store import JobStore

from .conftest import SETTINGS

CORPUS = Path(__file__).parent / "corpus" / "hostile.jsonl"
D = Defaults(model="claude-haiku-4-5", max_tokens=16)


def _parse_all(data: bytes) -> list[RequestItem | InputProblem]:
    with CORPUS.open("rb") if not data else _bytes_io(data) as f:
        return list(read_requests(iter_lines(f), defaults=D))


def _bytes_io(data: bytes) -> Any:
    import io

    return io.BytesIO(data)


def _usable(item: RequestItem) -> None:
    """What the engine and the store do with an item must work: fingerprint it, encode it as UTF-8 JSON."""
    params_fingerprint(item.params)
    json.dumps(item.params, ensure_ascii=False).encode("utf-8")
    json.dumps(item.params)


def _admit_all(tmp_path: Path, parsed: list[RequestItem | InputProblem]) -> None:
    with JobStore.open(tmp_path / "fuzz.db", settings=SETTINGS, restart=True) as store:
        for entry in parsed:
            if isinstance(entry, InputProblem):
                store.record_problem(entry)
            else:
                _usable(entry)
                store.admit(entry)
        store.commit()


def test_every_corpus_line_is_an_item_or_a_named_problem(tmp_path: Path) -> None:
    """Each hostile line in the corpus gives exactly one entry; the bad ones name why, the valid ones are usable."""
    raw_lines = [line for line in CORPUS.read_bytes().split(b"\n") if line.strip()]
    parsed = _parse_all(b"")
    assert len(parsed) == len(raw_lines)
    by_message = {p.line: p.message for p in parsed if isinstance(p, InputProblem)}
    ok = {p.custom_id for p in parsed if isinstance(p, RequestItem)}
    # A repeated key: the last value wins, as in every JSON parser. NUL is a valid character in a JSON string.
    assert ok == {"ok-emoji", "dup-key-2", "nul"}
    assert "nested deeper than 100 levels" in by_message[1]
    assert "nested deeper than 100 levels" in by_message[2]
    assert by_message[4] == "a number has more than 4,300 digits"
    assert "too large" in by_message[5]
    assert "lone surrogate" in by_message[8]
    assert "over 128,000" in by_message[17]
    _admit_all(tmp_path, parsed)


def test_a_lone_surrogate_is_recorded_under_its_id() -> None:
    """The issue's repro line: `"\\ud800"` in the prompt is a problem named by id and field, not a crash."""
    parsed = list(read_requests([b'{"id":"c","prompt":"\\ud800"}'], defaults=D))
    assert len(parsed) == 1
    problem = parsed[0]
    assert isinstance(problem, InputProblem)
    assert (problem.custom_id, problem.field) == ("c", "prompt")


def test_fingerprint_never_raises_on_a_surrogate() -> None:
    """A library caller's params with a lone surrogate still get a fingerprint (the store must not crash)."""
    assert len(params_fingerprint({"messages": [{"role": "user", "content": "\ud800"}]})) == 16


_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    # Lone surrogates drawn on purpose: hypothesis's default characters leave them out.
    st.text(alphabet=st.characters(codec=None) | st.characters(categories=["Cs"])),
)
_json = st.recursive(
    _json_leaf,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.binary(max_size=200).map(lambda b: b.replace(b"\n", b" ")), min_size=1, max_size=5))
def test_fuzz_arbitrary_bytes_never_crash_the_reader_or_the_store(tmp_path: Path, lines: list[bytes]) -> None:
    """Arbitrary bytes in a line: the reader yields one entry per non-blank line and the store takes every one."""
    data = b"\n".join(lines) + b"\n"
    parsed = _parse_all(data)
    assert len(parsed) == sum(1 for line in lines if line.strip())
    _admit_all(tmp_path, parsed)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prompt=_json, extra=_json, deep=st.sampled_from([0, 3, 99, 100, 101, 1000, 3000]))
def test_fuzz_json_with_surrogates_and_depth_never_crash(tmp_path: Path, prompt: Any, extra: Any, deep: int) -> None:
    """JSON lines holding any value (surrogates, deep nesting) become an item or a problem; items are usable."""
    nested = "[" * deep + "]" * deep
    line = f'{{"id":"x","prompt":{json.dumps(prompt)},"metadata":{json.dumps(extra)},"t":{nested or "0"}}}'
    parsed = _parse_all(line.encode("utf-8") + b"\n")
    assert len(parsed) == 1
    _admit_all(tmp_path, parsed)
