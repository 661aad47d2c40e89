"""The `sluicegate serve` command: the listening line, the loopback rule, client keys, SIGTERM, the key kept in."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest

from sluicegate.emulator import RunningEmulator
from sluicegate.serve import key_digest

from .conftest import UPSTREAM_KEY

pytestmark = pytest.mark.e2e

PARAMS: dict[str, Any] = {
    "model": "claude-haiku-4-5",
    "max_tokens": 32,
    "messages": [{"role": "user", "content": "hi"}],
}
HEADERS = {"anthropic-version": "2023-06-01", "content-type": "application/json"}


@dataclass
class Served:
    """A `sluicegate serve` process: its URL, the process, and where its stderr goes."""

    url: str
    first_line: str
    proc: subprocess.Popen[str]
    stderr: Path


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY")}
    env.pop("ANTHROPIC_BASE_URL", None)
    return {**env, **extra}


@contextmanager
def served(tmp_path: Path, *args: str, **env: str) -> Iterator[Served]:
    """Start `sluicegate serve --port 0 ARGS` and wait for its listening line (20 s at most)."""
    stderr = tmp_path / f"serve-{len(list(tmp_path.glob('serve-*')))}.err"
    with stderr.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sluicegate", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=_env(**env),
        )
    try:
        assert proc.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=20):
            raise AssertionError(f"no listening line within 20 s; stderr: {stderr.read_text()}")
        first = proc.stdout.readline().strip()
        url = first.rsplit(" ", 1)[-1]
        yield Served(url, first, proc, stderr)
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


def test_port_0_prints_the_listening_line_first(tmp_path: Path) -> None:
    """With no key set the built-in emulator is the upstream; stdout's first line names the port it picked."""
    with served(tmp_path, "--minute", "1") as gw:
        assert gw.first_line.startswith("sluicegate serve: listening on http://127.0.0.1:")
        port = int(gw.url.rsplit(":", 1)[1])
        assert port > 0
        message = anthropic.Anthropic(api_key="anything", base_url=gw.url).messages.create(**PARAMS)
        assert message.content[0].text.startswith("[")


def test_non_loopback_without_client_keys_refuses_to_start(tmp_path: Path) -> None:
    """Binding to a non-loopback address without --client-keys stops at once with a clear message."""
    done = subprocess.run(
        [sys.executable, "-m", "sluicegate", "serve", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert "refusing to listen on 0.0.0.0 without --client-keys" in done.stderr


def _keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "clients.jsonl"
    lines = [
        {"name": "web", "key_sha256": key_digest("sg-web-key-1"), "share": 3},
        {"name": "tiny", "key_sha256": key_digest("sg-tiny-key-2"), "budget": 0.000001},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


def _fetch(url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, str(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, str(exc.headers), exc.read().decode()


def test_client_keys_and_the_upstream_key_never_leaves(
    tmp_path: Path, emulator: Callable[..., RunningEmulator]
) -> None:
    """Wrong keys get 401, budgets hold, and the upstream key is in no response, page, metric or log line."""
    emu = emulator()
    keys = _keys_file(tmp_path)
    seen: list[str] = []
    args = ("--base-url", emu.base_url, "--client-keys", str(keys), "--access-log")
    with served(tmp_path, *args, ANTHROPIC_API_KEY=UPSTREAM_KEY) as gw:
        web = anthropic.Anthropic(api_key="sg-web-key-1", base_url=gw.url, max_retries=0)
        raw = web.messages.with_raw_response.create(**PARAMS)
        seen += [str(raw.headers), raw.text()]
        with web.messages.stream(**PARAMS) as stream:
            seen.append("".join(stream.text_stream))
        seen.append(str(web.messages.count_tokens(model=PARAMS["model"], messages=PARAMS["messages"])))
        body = json.dumps(PARAMS).encode()
        calls = [
            ({"x-api-key": "sg-web-key-1"}, {**PARAMS, "max_tokens": -1}, 400),
            ({"x-api-key": "sg-web-key-1"}, {**PARAMS, "model": "claude-none-1"}, 404),
            ({"x-api-key": "wrong-key"}, PARAMS, 401),
            ({"authorization": "Bearer " + UPSTREAM_KEY}, PARAMS, 401),  # the upstream key is not a client key
            ({}, PARAMS, 401),
            ({"x-api-key": "sg-tiny-key-2"}, PARAMS, 429),  # its budget cannot cover one request
        ]
        for extra, params, status in calls:
            body = json.dumps(params).encode()
            code, headers, text = _fetch(gw.url + "/v1/messages", data=body, headers={**HEADERS, **extra})
            assert code == status, text
            seen += [headers, text]
        code, _, tiny = _fetch(gw.url + "/v1/messages", data=body, headers={**HEADERS, "x-api-key": "sg-tiny-key-2"})
        assert "client budget" in json.loads(tiny)["error"]["message"]
        with pytest.raises(anthropic.AuthenticationError):
            anthropic.Anthropic(api_key="wrong", base_url=gw.url, max_retries=0).messages.create(**PARAMS)
        for page in ("/", "/metrics", "/_sluicegate/stats"):
            code, headers, text = _fetch(gw.url + page)
            assert code == 200
            seen += [headers, text]
        metrics = seen[-3]
        assert 'sluicegate_requests_total{client="web",status="200"}' in metrics
        assert 'sluicegate_requests_total{client="web",status="400"} 1' in metrics
        gw.proc.send_signal(signal.SIGTERM)
        assert gw.proc.stdout is not None
        seen.append(gw.proc.stdout.read())
        assert gw.proc.wait(timeout=30) == 0
    seen.append(gw.stderr.read_text())
    assert "client=web status=200" in seen[-1]  # the access log was on, so the grep below covers it
    leaks = [text[:200] for text in seen if UPSTREAM_KEY in text or UPSTREAM_KEY[-12:] in text]
    assert leaks == []


def test_sigterm_drains_in_flight_streams(tmp_path: Path, emulator: Callable[..., RunningEmulator]) -> None:
    """SIGTERM: new connections are refused, a stream in flight runs to its end, then the process exits 0."""
    emu = emulator(first_token_latency=0.1, per_token_latency=0.04, min_output_tokens=50, max_output_tokens=50)
    args = ("--base-url", emu.base_url, "--drain-timeout", "15")
    with served(tmp_path, *args, ANTHROPIC_API_KEY="k") as gw:
        events: list[str] = []
        started = threading.Event()

        def stream() -> None:
            body = json.dumps({**PARAMS, "max_tokens": 100, "stream": True}).encode()
            with (
                httpx2.Client(timeout=30) as http,
                http.stream("POST", gw.url + "/v1/messages", content=body, headers={**HEADERS, "x-api-key": "x"}) as r,
            ):
                for line in r.iter_lines():
                    if line.startswith("event: "):
                        events.append(line[7:])
                        started.set()

        reader = threading.Thread(target=stream)
        reader.start()
        assert started.wait(15)
        gw.proc.send_signal(signal.SIGTERM)
        reader.join(timeout=30)
        assert events[0] == "message_start"
        assert events[-1] == "message_stop"
        with pytest.raises(httpx2.ConnectError):
            httpx2.get(gw.url + "/metrics", timeout=5)
        assert gw.proc.wait(timeout=30) == 0
