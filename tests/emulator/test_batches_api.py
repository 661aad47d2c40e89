"""The Message Batches lifecycle over a real loopback server, driven by the official `anthropic` SDK.

The routes are served on their own with a recording request processor in place of the core's message
simulation, so these tests pin the batch endpoints' wire behaviour independently of the Messages path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any

import anthropic
import anyio
import httpx2
import pytest
from starlette.applications import Starlette

from sluicegate.emulator import EmulatorConfig
from sluicegate.emulator.batches import batch_routes
from sluicegate.emulator.prompt import count_tokens, prompt_tag
from sluicegate.emulator.state import EmulatorState

pytestmark = pytest.mark.e2e

KNOWN_MODELS = {"claude-haiku-4-5"}


def _process(params: Mapping[str, Any]) -> dict[str, Any]:
    if params["model"] not in KNOWN_MODELS:
        error = {"type": "not_found_error", "message": f"model: {params['model']}"}
        return {"type": "errored", "error": {"type": "error", "error": error}}
    message = {
        "id": "msg_01" + "a" * 22,
        "type": "message",
        "role": "assistant",
        "model": params["model"],
        "content": [{"type": "text", "text": f"[{prompt_tag(params)}] ok"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": count_tokens(params), "output_tokens": 2, "service_tier": "batch"},
    }
    return {"type": "succeeded", "message": message}


@pytest.fixture
def batch_server(serve: Callable[[Any], str]) -> Callable[..., Any]:
    """Factory: the batch routes alone (a recording processor in place of the core) on a loopback server."""

    def start(minute: float = 0.6, batch_seconds: float = 60.0, deadline: float = 86_400.0) -> Any:
        config = EmulatorConfig(minute=minute, batch_seconds=batch_seconds, batch_deadline=deadline, seed=3)
        app = Starlette(routes=batch_routes(EmulatorState(config), process=_process))
        return SimpleNamespace(base_url=serve(app))

    return start


MODEL = "claude-haiku-4-5"


def _req(i: int, **params: Any) -> dict[str, Any]:
    body = {"model": MODEL, "max_tokens": 20, "messages": [{"role": "user", "content": f"question {i}"}], **params}
    return {"custom_id": f"req-{i}", "params": body}


async def _wait_ended(client: anthropic.AsyncAnthropic, batch_id: str) -> Any:
    for _ in range(200):  # bounded: the batch lasts well under a real second
        batch = await client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return batch
        await anyio.sleep(0.02)
    raise AssertionError("batch did not end")


def test_lifecycle_create_retrieve_results_delete(batch_server: Callable[..., Any]) -> None:
    """A batch is in progress with everything processing, then ends with results on the emulator's own host."""
    emu = batch_server(minute=0.6, batch_seconds=30.0)  # 30 emulated seconds = 0.3 real seconds

    async def main() -> None:
        async with anthropic.AsyncAnthropic(base_url=emu.base_url, api_key="test", max_retries=0) as client:
            requests = [_req(i) for i in range(5)] + [_req(5, model="claude-no-such-model")]
            batch = await client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
            assert batch.processing_status == "in_progress"
            assert batch.request_counts.processing == 6
            assert batch.results_url is None
            with pytest.raises(anthropic.BadRequestError):
                await client.messages.batches.delete(batch.id)
            ended = await _wait_ended(client, batch.id)
            counts = ended.request_counts
            assert (counts.processing, counts.succeeded, counts.errored) == (0, 5, 1)
            assert ended.results_url is not None
            assert ended.results_url.startswith(emu.base_url)
            results = {r.custom_id: r.result async for r in await client.messages.batches.results(batch.id)}
            assert set(results) == {f"req-{i}" for i in range(6)}
            for i in range(5):
                ok = results[f"req-{i}"]
                assert ok.type == "succeeded"
                assert ok.message.content[0].text.startswith(f"[{prompt_tag(requests[i]['params'])}] ")  # type: ignore[union-attr]
                assert ok.message.usage.service_tier == "batch"  # type: ignore[union-attr]
            bad = results["req-5"]
            assert bad.type == "errored"
            assert bad.error.error.type == "not_found_error"  # type: ignore[union-attr]
            deleted = await client.messages.batches.delete(batch.id)
            assert deleted.type == "message_batch_deleted"
            with pytest.raises(anthropic.NotFoundError):
                await client.messages.batches.retrieve(batch.id)

    anyio.run(main)


def test_cancel_then_ended_with_canceled_counts(batch_server: Callable[..., Any]) -> None:
    """Cancel answers `canceling`; the batch then ends with the unprocessed requests canceled."""
    emu = batch_server(minute=0.6, batch_seconds=6000.0)  # far longer than the test

    async def main() -> None:
        async with anthropic.AsyncAnthropic(base_url=emu.base_url, api_key="test", max_retries=0) as client:
            batch = await client.messages.batches.create(requests=[_req(i) for i in range(3)])  # type: ignore[arg-type,misc]
            canceling = await client.messages.batches.cancel(batch.id)
            assert canceling.processing_status == "canceling"
            assert canceling.cancel_initiated_at is not None
            ended = await _wait_ended(client, batch.id)
            assert ended.request_counts.canceled == 3
            lines = [r async for r in await client.messages.batches.results(batch.id)]
            assert {r.result.type for r in lines} == {"canceled"}

    anyio.run(main)


def test_list_pagination(batch_server: Callable[..., Any]) -> None:
    """Listing is newest first, pages with after_id, and auto-pagination visits every batch once."""
    emu = batch_server(minute=0.6)

    async def main() -> None:
        async with anthropic.AsyncAnthropic(base_url=emu.base_url, api_key="test", max_retries=0) as client:
            ids = [(await client.messages.batches.create(requests=[_req(i)])).id for i in range(5)]  # type: ignore[list-item]
            page = await client.messages.batches.list(limit=2)
            assert [b.id for b in page.data] == [ids[4], ids[3]]
            assert page.has_more
            assert page.last_id == ids[3]
            seen = [b.id async for b in await client.messages.batches.list(limit=2)]
            assert seen == ids[::-1]

    anyio.run(main)


@pytest.mark.parametrize(
    ("requests", "fragment"),
    [
        ([_req(0), _req(0)], "Duplicate"),
        ([{"custom_id": "x", "params": {"model": MODEL, "messages": []}}], "max_tokens: Field required"),
        ([], "at least 1"),
    ],
)
def test_create_validation(batch_server: Callable[..., Any], requests: list[Any], fragment: str) -> None:
    """Invalid create bodies are a 400 invalid_request_error in the Anthropic error shape."""
    emu = batch_server()

    async def main() -> None:
        async with httpx2.AsyncClient() as http:
            r = await http.post(
                f"{emu.base_url}/v1/messages/batches",
                json={"requests": requests},
                headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
            )
        assert r.status_code == 400
        body = r.json()
        assert body["type"] == "error"
        assert body["error"]["type"] == "invalid_request_error"
        assert fragment in body["error"]["message"]

    anyio.run(main)


def test_expiry_marks_unfinished_requests_expired(batch_server: Callable[..., Any]) -> None:
    """A batch that outlives its deadline ends there, with the finished part kept and the rest `expired`."""
    emu = batch_server(minute=0.6, batch_seconds=40.0, deadline=20.0)  # half the requests are due after the deadline

    async def main() -> None:
        async with anthropic.AsyncAnthropic(base_url=emu.base_url, api_key="test", max_retries=0) as client:
            batch = await client.messages.batches.create(requests=[_req(i) for i in range(4)])  # type: ignore[arg-type,misc]
            ended = await _wait_ended(client, batch.id)
            assert (ended.request_counts.succeeded, ended.request_counts.expired) == (2, 2)
            assert ended.ended_at == ended.expires_at
            kinds = [r.result.type async for r in await client.messages.batches.results(batch.id)]
            assert sorted(kinds) == ["expired", "expired", "succeeded", "succeeded"]

    anyio.run(main)
