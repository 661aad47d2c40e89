"""The window estimator alone: bounds from reset headers and from flow, and recovery from a contradiction."""

from __future__ import annotations

import math

from sluicegate.limits.window import Window


def test_full_bucket_carries_no_information() -> None:
    """A bucket reported full (or within rounding of full) leaves the window unknown."""
    window = Window()
    window.observe_reset(30000, 30000, 0.0, remaining_error=501.0, reset_error=1.0)
    window.observe_reset(30000, 29600, 0.0, remaining_error=501.0, reset_error=1.0)
    assert window.seconds() is None


def test_whole_second_resets_converge_to_the_true_window_from_above() -> None:
    """60 s window, truncated whole-second resets at many phases: never below 60, and within 2.5% in the end."""
    window = Window()
    for i in range(200):
        missing = 10 + (i * 7) % 40  # of 50 requests
        true_reset = missing * 60.0 / 50
        phase = (i * 0.137) % 1.0  # where the second boundary falls
        shown = math.floor(phase + true_reset) - phase  # truncated timestamp minus now
        window.observe_reset(50, 50 - missing, shown, remaining_error=1.0, reset_error=1.0)
        estimate = window.seconds()
        assert estimate is not None
        assert estimate >= 60.0
    estimate = window.seconds()
    assert estimate is not None
    assert estimate <= 61.5
    lo, hi = window.bounds
    assert lo <= 60.0 <= hi


def test_flow_bounds_the_window_without_any_reset() -> None:
    """Remaining 10 then 20 after 1 s in which we consumed 5 of a 60-per-6-s bucket: refill >= 15 - 2, so W <= 6.7 s."""
    window = Window()
    window.observe_flow(60, 10, 0.0, 0.0, remaining_error=0.0)
    window.observe_flow(60, 20, 5.0, 1.5, remaining_error=0.0)
    assert window.seconds() == 60 * 1.5 / 15


def test_flow_never_reads_what_we_took_while_an_answer_was_in_flight_as_refill() -> None:
    """A 60-per-6-s bucket (10 a second): remaining 10 at 0 s; an answer admitted at 1.0 s and read at 1.5 s says 15
    (the server counted at admission), and we took 5 by 1.0 s and 10 more in between. Read as counted at our
    reading, the refill was 20 in 1.5 s (a 4.5 s window, faster than the server); counted at its least favourable
    moment it was at least 10 (a window of at most 9 s): the bound is 9 s."""
    window = Window()
    window.observe_flow(60, 10, 0.0, 0.0, remaining_error=0.0, since=0.0, consumed_since=0.0)
    window.observe_flow(60, 15, 15.0, 1.5, remaining_error=0.0, since=1.0, consumed_since=5.0)
    assert window.seconds() == 60 * 1.5 / 10
    # Nothing taken while the next answer was in flight: refill 20 in 2 s, the true window; a later, looser bound
    # (10 taken in flight) does not replace it: the tightest recent bound is kept.
    window.observe_flow(60, 15, 15.0, 2.0, remaining_error=0.0, since=1.9, consumed_since=15.0)
    assert window.seconds() == 6.0
    window.observe_flow(60, 14.5, 25.0, 2.4, remaining_error=0.0, since=1.95, consumed_since=15.0)
    assert window.seconds() == 6.0


def test_a_reset_moment_read_an_answer_late_reaches_back_to_the_admission() -> None:
    """A 120-per-6-s bucket counted empty at admission (full 6 s later), its answer read 2 s later: the timestamp
    says full in 4 s. Read as counted at our reading, that bounds the window to at most 5.04 s, faster than the
    server; reaching back to the admission (`stale`), the bound is 7.06 s and the true 6 s stays inside."""
    window = Window()
    window.observe_reset(120, 0, 4.0, remaining_error=1.0, reset_error=1.0, stale=2.0)
    lo, hi = window.bounds
    assert lo <= 6.0 <= hi
    assert hi == 120 * (4.0 + 1.0 + 2.0) / 119


def test_a_contradiction_keeps_the_newest_consistent_responses() -> None:
    """After the window changes (a limit moved), old intervals that contradict the new ones are dropped."""
    window = Window()
    for _ in range(3):
        window.observe_reset(100, 0, 60.0, remaining_error=0.0, reset_error=0.001)
    first = window.seconds()
    assert first is not None
    assert 59.9 <= first <= 60.1
    window.observe_reset(100, 50, 3.0, remaining_error=0.0, reset_error=0.001)  # now a 6 s window
    second = window.seconds()
    assert second is not None
    assert 5.9 <= second <= 6.1
