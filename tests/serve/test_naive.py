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
RPM = 50
LATENCY = 0.2


def _best_seconds(n: int) -> float:
    """From a full server bucket: RPM requests at once, then the rest at the refill rate, plus one latency."""
    return max(0, n - RPM) / (RPM / MINUTE) + LATENCY


def _gather_through(gw: RunningGateway, n: int) -> tuple[int, int, float]:
    docs = make_documents(n, max_tokens=64)
    rec = Recorder()
    start = time.monotonic()
    # The SDK's defaults: 600 s timeout, 2 retries. Only the base URL points at the gateway.
    anyio.run(lambda: gather_all(docs, rec, base_url=gw.base_url, api_key="my-own-key", request_timeout=600.0))
    elapsed = time.monotonic() - start
    result = tally(docs, rec.outcomes)
    assert result.wrong == 0
    assert result.missing == 0
    return result.ok, result.failed, elapsed


def test_gather_300_at_tier1_all_answered_near_the_ceiling(gateway: Callable[..., RunningGateway]) -> None:
    """300/300 answered with 0 client errors, at >= 0.9 of the best completion rate the limits allow."""
    gw = gateway(emulator={"tier": 1, "minute": MINUTE, "first_token_latency": LATENCY}, minute=MINUTE)
    ok, failed, elapsed = _gather_through(gw, 300)
    assert (ok, failed) == (300, 0)
    ratio = _best_seconds(300) / elapsed
    print(f"300 prompts in {elapsed:.2f} s; best from a full bucket {_best_seconds(300):.2f} s; ratio {ratio:.3f}")
    assert ratio >= 0.9
    assert gw.upstream.stats()["responses"]["429"] == 0 if "429" in gw.upstream.stats().get("responses", {}) else True


def test_gather_300_with_upstream_faults_no_client_errors(gateway: Callable[..., RunningGateway]) -> None:
    """With 5% 529 and 2% 500 from the upstream, the clients still see 0 errors: the gateway retried inside."""
    faults = (FaultSpec(kind="overloaded", probability=0.05), FaultSpec(kind="api_error", probability=0.02))
    gw = gateway(
        emulator={"tier": 1, "minute": MINUTE, "first_token_latency": LATENCY, "faults": faults, "seed": 7},
        minute=MINUTE,
    )
    ok, failed, _ = _gather_through(gw, 300)
    assert (ok, failed) == (300, 0)
    failures = gw.stats()["upstream_failures"]
    assert failures.get("overloaded", 0) > 0
    assert failures.get("server", 0) > 0
