"""Client keys (file, digests, open mode) and the upstream key scrubbed from error bodies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sluicegate._exceptions import ConfigError
from sluicegate.serve.clients import Clients, key_digest
from sluicegate.serve.errors import own_error
from sluicegate.serve.upstream import scrub


def _write(tmp_path: Path, *lines: object) -> Path:
    path = tmp_path / "keys.jsonl"
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def test_known_keys_are_accepted_by_digest_others_refused(tmp_path: Path) -> None:
    """A key whose digest is listed maps to its client (name, share, budget); any other key, or none, to None."""
    path = _write(
        tmp_path,
        "# team keys",
        {"name": "web", "key_sha256": key_digest("k-web"), "share": 3, "budget": 12.5},
        {"key_sha256": key_digest("k-other")},
    )
    clients = Clients.load(path)
    web = clients.authenticate({"x-api-key": "k-web"})
    assert web is not None
    assert (web.name, web.share, web.budget) == ("web", 3.0, 12.5)
    other = clients.authenticate({"authorization": "Bearer k-other"})
    assert other is not None
    assert other.name == "client-3"  # the line number names a client without a name
    assert clients.authenticate({"x-api-key": "k-nope"}) is None
    assert clients.authenticate({}) is None
    assert "k-web" not in path.read_text()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 1: not JSON"),
        ({"key_sha256": "abc"}, "line 1: field 'key_sha256'"),
        ({"key_sha256": key_digest("x"), "share": 0}, "line 1: field 'share'"),
        ({"key_sha256": key_digest("x"), "budget": -1}, "line 1: field 'budget'"),
        ({"key_sha256": key_digest("x"), "name": "has space"}, "line 1: field 'name'"),
        ({"key_sha256": key_digest("x"), "key": "plain"}, "line 1: field 'key': unknown field"),
    ],
)
def test_bad_keys_file_names_line_and_field(tmp_path: Path, line: object, message: str) -> None:
    """A bad line stops the start with an error naming the file's line and the field."""
    with pytest.raises(ConfigError, match=message):
        Clients.load(_write(tmp_path, line))


def test_open_mode_accepts_anyone_as_local_or_their_label() -> None:
    """Without a keys file (loopback only) any key, or none, is accepted; x-sluicegate-client only labels it."""
    clients = Clients(None)
    assert clients.authenticate({}) is not None
    labelled = clients.authenticate({"x-api-key": "whatever", "x-sluicegate-client": "nightly-job"})
    assert labelled is not None
    assert labelled.name == "nightly-job"
    odd = clients.authenticate({"x-sluicegate-client": "not a <label>"})
    assert odd is not None
    assert odd.name == "local"


def test_scrub_removes_the_key_and_its_masked_echo() -> None:
    """An error body that echoes the key, whole or masked as some APIs do, leaves without it."""
    key = "sk-proj-abcdefghijklmnop1234"
    body = f'{{"error": {{"message": "Incorrect API key provided: sk-proj-****1234. Key {key} refused."}}}}'
    cleaned = scrub(body.encode(), key).decode()
    assert key not in cleaned
    assert "1234" not in cleaned
    assert "Incorrect API key provided: [redacted]" in cleaned


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_own_429_carries_a_truthful_wait(provider: str) -> None:
    """The gateway's 429 says how long to wait in seconds (rounded up) and in milliseconds."""
    error = own_error(provider, "rate_limited", "busy", retry_after=7.2)  # type: ignore[arg-type]
    assert error.status == 429
    assert error.headers["retry-after"] == "8"
    assert error.headers["retry-after-ms"] == "7200"
    body = json.loads(error.body)
    kind = body["error"]["type"]
    assert kind == ("rate_limit_error" if provider == "anthropic" else "requests")
