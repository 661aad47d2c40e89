"""The bench's perfect client under reserved output accounting: what the emulator's charging allows at best."""

from __future__ import annotations

import dataclasses

import pytest
from bench.reserved import ideal_reserved
from bench.scenarios import SCENARIOS


def test_produced_accounting_has_no_reserved_ideal() -> None:
    """A scenario whose server counts produced tokens gets 0: the produced perfect client is the right one there."""
    assert ideal_reserved(SCENARIOS["rpm_bound"], 400, 40.0, 0.5) == 0.0


def test_answers_that_end_at_once_leave_only_the_bucket() -> None:
    """With no latency every reservation is refunded as it is made: the produced ideal, (total - bucket) / rate,
    plus the refill the last request's unreserved part (1,024 - 600) must wait for."""
    scenario = SCENARIOS["otpm_bound"]  # 40,000 per 10 s, max_tokens 1,024
    assert ideal_reserved(scenario, 150, 600.0, 0.0) == pytest.approx((150 * 600 - 40_000 + 424) / 4_000, abs=0.01)


def test_reservations_in_flight_cost_their_unused_part_once() -> None:
    """With answers taking 1 s: the start admits 39 at once (39 x 1,024 <= 40,000), and the run ends later than the
    produced ideal by about the unused part held by one second's requests in flight (6.7 x 424 / 4,000 s)."""
    scenario = SCENARIOS["otpm_bound"]
    small = dataclasses.replace(scenario, otpm=40_000)
    assert ideal_reserved(small, 39, 600.0, 1.0) == 0.0
    assert ideal_reserved(small, 40, 600.0, 1.0) > 0.0
    produced = (150 * 600 - 40_000) / 4_000
    reserved = ideal_reserved(scenario, 150, 600.0, 1.0)
    assert produced + 0.5 < reserved < produced + 1.2
