"""The batch route's priming batch: a resumed job reuses a recent one instead of paying for priming again."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import httpx2
import pytest

from sluicegate.jobs.batch_runner import BatchJobConfig
from sluicegate.jobs.batch_submit import PRIMER_REUSE
from sluicegate.jobs.reader import Defaults
from sluicegate.retry import RetryPolicy

from .test_batch_intents import T0, FakeApi, _job, _output_ids, _run

SHARED = "the shared support policy, word for word " * 200  # over Sonnet 4.5's 1,024-token cache minimum
IDS = [f"doc-{i}" for i in range(4)]


@dataclass
class RefusingApi(FakeApi):
    """A FakeApi whose create calls fail (connection refused, no batch made) from the `refuse_from`-th on."""

    refuse_from: int | None = None

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        if request.method == "POST" and self.refuse_from is not None and self.creates + 1 >= self.refuse_from:
            raise httpx2.ConnectError("connection refused")
        return super().handle(request)


def _primed_job(tmp_path: Path, api: FakeApi) -> BatchJobConfig:
    config, _ = _job(tmp_path, api)
    config.input_path.write_text("".join(json.dumps({"id": cid, "prompt": f"about {cid}"}) + "\n" for cid in IDS))
    return replace(config, defaults=Defaults(model="claude-sonnet-4-5", max_tokens=16, system=SHARED))


@pytest.mark.parametrize(("later", "creates"), [(10 * 60.0, 2), (PRIMER_REUSE + 60.0, 3)])
def test_a_resumed_job_reuses_a_recent_priming_batch_and_primes_again_once_it_may_have_expired(
    tmp_path: Path, later: float, creates: int
) -> None:
    """Run 1 primes (a 1-request batch) and stops when the rest's create fails. Resumed 10 min later it submits only
    the rest (2 batches in all); resumed after 46 min the 1 h entry may be gone, so it primes again (3)."""
    api = RefusingApi(refuse_from=2)
    config = _primed_job(tmp_path, api)
    code, text = _run(replace(config, retry=RetryPolicy(max_attempts=1)))
    assert code == 4, text
    assert api.creates == 1
    assert len(api.batches["msgbatch_new1"][1]) == 1  # the priming batch: one request
    api.refuse_from = None
    code, text = _run(replace(config, clock=lambda: T0 + later))
    assert code == 0, text
    assert api.creates == creates
    assert ("primed by an earlier run" in text) == (creates == 2)
    assert _output_ids(config.output_path) == IDS
