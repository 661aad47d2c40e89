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


def _best_span(n: int) -> float:
    """From a full server bucket: RPM answers at once, then the rest at the refill rate."""
    return max(0, n - RPM) / (RPM / MINUTE)


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


def test_gather_300_at_tier1_all_answered_near_the_ceiling(gateway: Callable[..., RunningGateway]) -> None:
    """300/300 answered with 0 client errors, at >= 0.9 of the best completion rate from a full bucket.

    The rate runs from the first answer to the last: the stock client's own start (building 300 requests and
    their connections) takes as long without the gateway, so it is not the gateway's to count.
    """
    gw = gateway(emulator={"tier": 1, "minute": MINUTE, "first_token_latency": LATENCY}, minute=MINUTE)
    ok, failed, _, times = _gather_through(gw, 300)
    assert (ok, failed) == (300, 0)
    ratio = _best_span(300) / (times[-1] - times[0])
    steady = (280 - 60) / (times[279] - times[59]) / (RPM / MINUTE)
    print(f"first answer {times[0]:.2f} s, last {times[-1]:.2f} s; ratio to the best {ratio:.3f}; steady {steady:.3f}")
    assert steady >= 0.9
    assert ratio >= 0.9


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
