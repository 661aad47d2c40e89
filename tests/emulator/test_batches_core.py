"""Message Batches processed by the real message simulation of a full emulator, driven by the anthropic SDK."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import anyio
import pytest

from sluicegate.emulator import RunningEmulator
from sluicegate.emulator.prompt import count_tokens, prompt_tag

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

Factory = Callable[..., RunningEmulator]
MODEL = "claude-haiku-4-5"


def _params(i: int, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 10 + 5 * i, "messages": [{"role": "user", "content": f"q{i}"}], **extra}


async def _wait_ended(client: anthropic.AsyncAnthropic, batch_id: str) -> Any:
    for _ in range(200):  # bounded: the batch lasts 0.3 real seconds
        batch = await client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return batch
        await anyio.sleep(0.02)
    raise AssertionError("batch did not end")


async def test_batch_results_match_the_messages_endpoint(emulator: Factory) -> None:
    """Succeeded results equal /v1/messages answers (text, usage) at the batch tier; bad params become errored."""
    emu = emulator(minute=0.6, batch_seconds=30.0, seed=7)
    good = {f"ok-{i}": _params(i) for i in range(4)}
    bad: dict[str, tuple[dict[str, Any], str]] = {
        "unknown-model": ({**_params(9), "model": "claude-no-such-model"}, "not_found_error"),
        "bad-role": (
            {**_params(9), "messages": [{"role": "system", "content": "x"}]},
            "invalid_request_error",
        ),
        "bad-ttl": (
            {
                **_params(9),
                "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral", "ttl": "9h"}}],
            },
            "invalid_request_error",
        ),
    }
    requests = [{"custom_id": k, "params": p} for k, p in good.items()]
    requests += [{"custom_id": k, "params": p} for k, (p, _) in bad.items()]
    async with anthropic.AsyncAnthropic(base_url=emu.base_url, api_key="test", max_retries=0) as client:
        batch = await client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
        ended = await _wait_ended(client, batch.id)
        counts = ended.request_counts
        assert (counts.processing, counts.succeeded, counts.errored) == (0, len(good), len(bad))
        assert ended.results_url == f"{emu.base_url}/v1/messages/batches/{batch.id}/results"
        results = {r.custom_id: r.result async for r in await client.messages.batches.results(batch.id)}
        assert set(results) == set(good) | set(bad)
        for custom_id, params in good.items():
            result = results[custom_id]
            assert result.type == "succeeded"
            online = await client.messages.create(**params)
            message = result.message
            text = message.content[0].text  # type: ignore[union-attr]
            assert text.startswith(f"[{prompt_tag(params)}] ")
            assert text == online.content[0].text
            assert message.model == online.model == "claude-haiku-4-5-20251001"
            assert message.id.startswith("msg_01")
            assert message.stop_reason == online.stop_reason
            assert message.usage.input_tokens == online.usage.input_tokens == count_tokens(params)
            assert message.usage.output_tokens == online.usage.output_tokens <= params["max_tokens"]
            assert message.usage.service_tier == "batch"
            assert online.usage.service_tier == "standard"
        for custom_id, (_, error_type) in bad.items():
            result = results[custom_id]
            assert result.type == "errored"
            assert result.error.type == "error"
            assert result.error.error.type == error_type
