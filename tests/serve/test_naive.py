"""The seed's naive `asyncio.gather` over 300 prompts, stock SDK, base URL changed: every answer, no errors."""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
import pytest

from sluicegate.demo.peers import Recorder, gather_all
from sluicegate.demo.workload import make_documents, tally
from sluicegate.emulator.config import FaultSpec

from .conftest import RunningGateway

pytestmark = pytest.mark.e2e

MINUTE = 1.2  # one emulated minute in real seconds: Tier 1's 50 requests per minute become 41.7 per second
LATENCY = 0.2


def _gather_through(gw: RunningGateway, n: int) -> tuple[int, int, float, list[float]]:
    docs = make_documents(n, max_tokens=64)
    rec = Recorder()
    start = time.monotonic()
    # The SDK's defaults: 600 s timeout, 2 retries. Only the base URL points at the gateway.
    anyio.run(lambda: gather_all(docs, rec, base_url=gw.base_url, api_key="my-own-key", request_timeout=600.0))
    elapsed = time.monotonic() - start
    result = tally(docs, rec.outcomes)
    assert result.wrong == 0
    assert result.missing == 0
    return result.ok, result.failed, elapsed, sorted(o.at for o in rec.outcomes.values())


def test_gather_300_at_tier1_all_answered(gateway: Callable[..., RunningGateway]) -> None:
    """300/300 answered, each with its own prompt's answer, 0 errors seen by the client, and no 429 reached it.

    How close this runs to the best the limits allow is a speed figure: bench/serve/run.py measures it.
    """
    gw = gateway(emulator={"tier": 1, "minute": MINUTE, "first_token_latency": LATENCY}, minute=MINUTE)
    ok, failed, _, times = _gather_through(gw, 300)
    assert (ok, failed) == (300, 0)
    assert len(times) == 300
    assert gw.stats()["refused"] == {}  # the gateway queued everything: no deadline or queue-full refusals


def test_gather_300_with_upstream_faults_no_client_errors(gateway: Callable[..., RunningGateway]) -> None:
    """With 5% 529 and 2% 500 from the upstream, the clients still see 0 errors: the gateway retried inside."""
    faults = (FaultSpec(kind="overloaded", probability=0.05), FaultSpec(kind="api_error", probability=0.02))
    gw = gateway(
        emulator={"tier": 1, "minute": MINUTE, "first_token_latency": LATENCY, "faults": faults, "seed": 7},
        minute=MINUTE,
    )
    ok, failed, _, _ = _gather_through(gw, 300)
    assert (ok, failed) == (300, 0)
    failures = gw.stats()["upstream_failures"]
    assert failures.get("overloaded", 0) > 0
    assert failures.get("server", 0) > 0
