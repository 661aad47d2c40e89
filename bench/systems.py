"""Library peers for the benchmark, each set up the way its own documentation recommends for rate limits.

Limits handed to a peer are per real minute (`real_limits` = (rpm, itpm, otpm) already scaled by the
emulator's time compression), because these libraries count against the wall clock.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

from sluicegate.demo.peers import Document, Recorder, send_and_record, split


async def run_bare_loop(
    docs: Sequence[Document],
    rec: Recorder,
    *,
    base_url: str,
    api_key: str,
    concurrency_hint: int = 32,
    **_: Any,
) -> None:
    """The overhead baseline: `AsyncAnthropic` under a semaphore, nothing else."""
    import anthropic

    client = anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url)
    semaphore = asyncio.Semaphore(concurrency_hint)

    async def one(doc: Document) -> None:
        async with semaphore:
            await send_and_record(client, doc, rec)

    try:
        await asyncio.gather(*(one(doc) for doc in docs))
    finally:
        await client.close()


async def run_sdk_dropin(
    docs: Sequence[Document],
    rec: Recorder,
    *,
    base_url: str,
    api_key: str,
    minute: float | None = None,
    max_concurrency: int | None = None,
    output_accounting: str | None = None,
    request_timeout: float = 60.0,
    **_: Any,
) -> None:
    """The seed's `asyncio.gather` over every prompt with the official SDK; the one change is
    `http_client=sluicegate.integrations.http_client(...)` (plus `max_retries=0`, as its docs say).

    No `minute`: the limiter learns each limit's window from the headers, as the engine does. The output-token
    accounting is the account's documented configuration, given as to the engine."""
    import anthropic

    from sluicegate.integrations import http_client

    client = anthropic.AsyncAnthropic(
        api_key=api_key,
        base_url=base_url,
        max_retries=0,
        timeout=request_timeout,
        http_client=http_client(
            minute=minute,
            max_concurrency=max_concurrency,
            output_accounting=output_accounting,  # type: ignore[arg-type]
        ),
    )

    try:
        await asyncio.gather(*(send_and_record(client, doc, rec) for doc in docs))
    finally:
        await client.close()


def run_sluicegate_sync(
    docs: Sequence[Document],
    rec: Recorder,
    *,
    base_url: str,
    api_key: str,
    limits: Sequence[int] | None = None,
    max_concurrency: int | None = None,
    output_accounting: str | None = None,
    **_: Any,
) -> None:
    """The sync entry, `sluicegate.run(...)`, from plain code: what replaces the synchronous for loop."""
    import sluicegate

    given = None
    if limits is not None:
        rpm, itpm, otpm = limits
        given = sluicegate.Limits(requests_per_minute=rpm, input_tokens_per_minute=itpm, output_tokens_per_minute=otpm)
    results = sluicegate.run(
        [dict(doc) for doc in docs],
        api_key=api_key,
        base_url=base_url,
        limits=given,
        max_concurrency=max_concurrency,
        output_accounting=output_accounting,
    )
    for result in results:
        if result.ok:
            rec.ok(result.custom_id, result.text, result.attempts)
        else:
            error = result.error
            rec.fail(result.custom_id, f"{error.kind}: {error.message}" if error else "error", result.attempts)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for part in content or []:
        if isinstance(part, dict) and part.get("type") == "text":
            parts.append(str(part.get("text", "")))
        elif isinstance(part, str):
            parts.append(part)
    return "".join(parts)


async def run_langchain(
    docs: Sequence[Document],
    rec: Recorder,
    *,
    base_url: str,
    api_key: str,
    real_limits: Sequence[float],
    concurrency_hint: int = 32,
    request_timeout: float = 60.0,
    **_: Any,
) -> None:
    """`ChatAnthropic` with an `InMemoryRateLimiter` at the RPM, run with `.abatch_as_completed(max_concurrency=)`."""
    from langchain_anthropic import ChatAnthropic
    from langchain_core.rate_limiters import InMemoryRateLimiter

    first = docs[0]
    limiter = InMemoryRateLimiter(
        requests_per_second=real_limits[0] / 60.0,
        check_every_n_seconds=0.01,
        max_bucket_size=10,
    )
    llm = ChatAnthropic(  # type: ignore[call-arg]
        model=first["model"],
        max_tokens=first["max_tokens"],
        api_key=api_key,
        base_url=base_url,
        rate_limiter=limiter,
        default_request_timeout=request_timeout,
    )
    ids = [str(d["custom_id"]) for d in docs]
    inputs = [[(m["role"], m["content"]) for m in d["messages"]] for d in docs]
    config: Any = {"max_concurrency": concurrency_hint}
    async for index, output in llm.abatch_as_completed(inputs, config=config, return_exceptions=True):
        if isinstance(output, BaseException):
            rec.fail(ids[index], output, None)
        else:
            rec.ok(ids[index], _content_text(output.content), None)


async def run_litellm(
    docs: Sequence[Document],
    rec: Recorder,
    *,
    base_url: str,
    api_key: str,
    real_limits: Sequence[float],
    concurrency_hint: int = 32,
    request_timeout: float = 60.0,
    **_: Any,
) -> None:
    """A LiteLLM `Router` with rpm/tpm on the one deployment and usage-based routing, driven by `acompletion`."""
    # Without this LiteLLM fetches its price map from the internet at import time; the bench talks to loopback only.
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import litellm
    from litellm import Router

    litellm.telemetry = False
    rpm, itpm, otpm = real_limits
    first = docs[0]
    router = Router(
        model_list=[
            {
                "model_name": "claude",
                "litellm_params": {
                    "model": f"anthropic/{first['model']}",
                    "api_key": api_key,
                    "api_base": base_url,
                    "rpm": int(rpm),
                    "tpm": int(itpm + otpm),
                    "timeout": request_timeout,
                },
            }
        ],
        routing_strategy="usage-based-routing-v2",
        num_retries=3,
    )
    semaphore = asyncio.Semaphore(concurrency_hint)

    async def one(doc: Document) -> None:
        custom_id, params = split(doc)
        async with semaphore:
            try:
                response: Any = await router.acompletion(
                    model="claude", messages=params["messages"], max_tokens=params["max_tokens"]
                )
            except Exception as exc:
                rec.fail(custom_id, exc, None)
            else:
                rec.ok(custom_id, response.choices[0].message.content or "", None)

    await asyncio.gather(*(one(doc) for doc in docs))
