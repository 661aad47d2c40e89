"""The stream faults reach non-streaming calls too: `truncate` cuts the JSON body mid-way and drops the
connection, `stream_error` answers 500 after the work; sluicegate's engine retries both to success."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
import pytest

from sluicegate import Engine
from sluicegate.emulator import FaultSpec, RunningEmulator

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

PARAMS: dict[str, Any] = {"model": "claude-haiku-4-5", "max_tokens": 50, "messages": [{"role": "user", "content": "x"}]}


async def test_truncate_cuts_a_plain_json_answer(emulator: Callable[..., RunningEmulator]) -> None:
    """A non-streaming call under `truncate` gets half a body and a dropped connection: a connection error."""
    emu = emulator(faults=(FaultSpec(kind="truncate", start=0.0),), first_token_latency=0.0)
    async with httpx2.AsyncClient(base_url=emu.base_url) as client:
        with pytest.raises(httpx2.RemoteProtocolError):
            await client.post(
                "/v1/messages", json=PARAMS, headers={"x-api-key": "test", "anthropic-version": "2023-06-01"}
            )
    async with anthropic.AsyncAnthropic(base_url=emu.base_url, api_key="test", max_retries=0) as sdk:
        with pytest.raises(anthropic.APIConnectionError):
            await sdk.messages.create(**PARAMS)
    assert emu.stats()["faults"]["truncate"] == 2  # the plain request and the SDK request


class _Records(logging.Handler):
    """Keeps every record it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_a_truncated_answer_is_not_logged_as_a_server_error(emulator: Callable[..., RunningEmulator]) -> None:
    """The dropped connection is the fault itself: the server logs no "returned without completing" error for it."""
    emu = emulator(faults=(FaultSpec(kind="truncate", start=0.0),), first_token_latency=0.0)
    handler = _Records()
    server_log = logging.getLogger("uvicorn.error")  # attached after the server configured its logging
    server_log.addHandler(handler)
    try:
        async with anthropic.AsyncAnthropic(base_url=emu.base_url, api_key="test", max_retries=0) as sdk:
            for _ in range(3):
                with pytest.raises(anthropic.APIConnectionError):
                    await sdk.messages.create(**PARAMS)
        emu.wait_idle()
    finally:
        server_log.removeHandler(handler)
    assert emu.stats()["faults"]["truncate"] == 3
    assert [record.getMessage() for record in handler.records if record.levelno >= logging.ERROR] == []


async def test_stream_error_fails_a_plain_call_with_a_500(emulator: Callable[..., RunningEmulator]) -> None:
    """A non-streaming call under `stream_error` gets a 500 api_error (retryable), counted as the fault."""
    emu = emulator(faults=(FaultSpec(kind="stream_error", start=0.0),), first_token_latency=0.0)
    async with anthropic.AsyncAnthropic(base_url=emu.base_url, api_key="test", max_retries=0) as sdk:
        with pytest.raises(anthropic.InternalServerError):
            await sdk.messages.create(**PARAMS)
    assert emu.stats()["faults"]["stream_error"] == 1


@pytest.mark.parametrize("kind", ["truncate", "stream_error"])
async def test_the_engine_survives_stream_faults_on_plain_calls(
    emulator: Callable[..., RunningEmulator], kind: str
) -> None:
    """With a third of the non-streaming answers cut or failed, every request still succeeds after retries."""
    emu = emulator(faults=(FaultSpec(kind=kind, probability=0.33),), first_token_latency=0.0, seed=3)  # type: ignore[arg-type]
    requests = [{**PARAMS, "custom_id": f"r{i}"} for i in range(30)]
    async with Engine(api_key="test", base_url=emu.base_url, stream=False) as engine:
        results = await engine.map(requests)
    assert all(result.ok for result in results)
    assert emu.stats()["faults"][kind] > 0
    assert max(result.attempts for result in results) > 1
