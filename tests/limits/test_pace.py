"""Smooth pacing after a short-interval refusal: half the refused rate, a binary search upwards, back on refusal."""

from __future__ import annotations

from sluicegate.limits.pace import Pace

LEARNT = 10.0  # tokens per second the window learnt so far says


def _held_for(pace: Pace, start: float, seconds: float, *, drain: float = 0.0) -> float:
    """Responses every 0.1 s while the pace holds requests back, what is left falling by `drain` each time;
    returns the time after them."""
    now = start
    steps = round(seconds * 10)
    for step in range(steps + 1):
        while pace.wait_time(1.0, now, behind=0.0) == 0.0:  # requests go until the pace holds one back
            pace.take(1.0, now)
        pace.probe(LEARNT, now, remaining=40.0 - drain * step, slack=1.0)
        now = round(now + 0.1, 6)
    return now


def test_starts_at_half_the_refused_rate_never_below_the_learnt_one() -> None:
    """Refused while sending 64/s: the pace is 32/s; refused while sending 12/s: the learnt 10/s."""
    fast, slow = Pace(), Pace()
    fast.start(64.0, LEARNT, 0.0)
    slow.start(12.0, LEARNT, 0.0)
    assert fast.rate(LEARNT) == 32.0
    assert slow.rate(LEARNT) == LEARNT


def test_starts_half_way_between_the_learnt_rate_and_the_fastest_the_headers_allow() -> None:
    """Refused while sending 64/s where the reset headers allow 10-30/s: the pace starts at 20/s, and a refusal
    there steps back by a third (nothing was proven good), never below the learnt rate."""
    pace = Pace()
    pace.start(64.0, LEARNT, 0.0, fastest=30.0)
    assert pace.rate(LEARNT) == 20.0
    assert pace.refused(LEARNT, 0.5)
    assert pace.rate(LEARNT) == 20.0 / 1.5
    assert pace.refused(LEARNT, 1.0)
    assert pace.rate(LEARNT) == LEARNT


def test_probes_no_faster_than_the_headers_allow_and_not_at_all_when_they_pin_the_rate() -> None:
    """Probing upwards stops half way to the slower of the refused pace and the fastest refill the headers allow,
    and does not start when that is within a fifth of the pace: there is nothing left to find."""
    loose, pinned = Pace(), Pace()
    loose.start(64.0, LEARNT, 0.0, fastest=20.0)  # 15/s
    loose.refused(LEARNT, 0.0)  # 15 -> the learnt 10
    _held_for(loose, 0.0, 1.0)
    assert loose.rate(LEARNT) == (LEARNT + 15.0) / 2.0
    pinned.start(64.0, LEARNT, 0.0, fastest=11.0)
    pinned.refused(LEARNT, 0.0)
    _held_for(pinned, 0.0, 5.0)
    assert pinned.rate(LEARNT) == LEARNT


def test_probes_half_way_to_the_refused_rate_after_a_good_second_and_stops_when_close() -> None:
    """From 32/s (64/s refused): a second held back with the bucket not draining makes 32 good and tries 48; refused
    there it goes back to 32, then tries 40, and stops: 48 is within a fifth of 40."""
    pace = Pace()
    pace.start(64.0, LEARNT, 0.0)
    now = _held_for(pace, 0.0, 1.0)
    assert pace.rate(LEARNT) == 48.0
    assert pace.refused(LEARNT, now)
    assert pace.rate(LEARNT) == 32.0
    now = _held_for(pace, now, 1.0)
    assert pace.rate(LEARNT) == 40.0
    _held_for(pace, now, 3.0)
    assert pace.rate(LEARNT) == 40.0


def test_no_probe_while_the_bucket_drains_or_nothing_waits() -> None:
    """A bucket that drains shows its refill (the window is learnt), and a pace nobody waits for proves nothing:
    neither raises the pace."""
    draining, idle = Pace(), Pace()
    draining.start(64.0, LEARNT, 0.0)
    idle.start(64.0, LEARNT, 0.0)
    _held_for(draining, 0.0, 3.0, drain=0.5)
    now = 0.0
    for _ in range(30):
        idle.probe(LEARNT, now, remaining=40.0, slack=1.0)
        now += 0.1
    assert draining.rate(LEARNT) == 32.0
    assert idle.rate(LEARNT) == 32.0


def test_a_bucket_refilling_below_full_proves_the_pace_too_slow() -> None:
    """After a step back, the server's bucket refills what the refusals cost without being full yet: that is a pace
    below the refill, so it probes after one second, not once the bucket is full again."""
    pace = Pace()
    pace.start(64.0, LEARNT, 0.0)
    _held_for(pace, 0.0, 1.0, drain=-0.5)  # 40 left, then 40.5, 41, ...: rising, never full
    assert pace.rate(LEARNT) == 48.0


def test_a_refusal_at_the_learnt_rate_is_not_the_pace_s_to_fix() -> None:
    """Paced at the learnt rate and still refused: nothing to step back from (the caller pauses instead)."""
    pace = Pace()
    pace.start(12.0, LEARNT, 0.0)
    assert not pace.refused(LEARNT, 1.0)
    assert pace.rate(LEARNT) == LEARNT


def test_without_a_refusal_the_probe_doubles_up_to_sixteen_times_the_learnt_rate() -> None:
    """Smooth from the start (no refusal known): each good second doubles the pace, up to 16x the learnt rate."""
    pace = Pace()
    pace.start(0.0, LEARNT, 0.0)
    now = _held_for(pace, 0.0, 1.0)
    assert pace.rate(LEARNT) == 20.0
    _held_for(pace, now, 5.0)
    assert pace.rate(LEARNT) == 160.0


def test_a_request_let_out_late_does_not_push_back_the_next_one() -> None:
    """Paced at 10 requests/s with every wake-up 2 ms late, 100 requests still go out at 10/s, not 9.8/s; and after
    a pause two requests never go out closer than 95% of one interval."""
    pace = Pace()
    pace.start(20.0, LEARNT, 0.0, request=1.0)  # 10/s, nothing refused below
    now = 0.0
    first = None
    for _ in range(100):
        now += pace.wait_time(1.0, now, behind=0.0) + 0.002
        first = now if first is None else first
        pace.take(1.0, now)
    assert first is not None
    assert (now - first) / 99 < 0.1005
    now += 5.0  # idle
    pace.take(1.0, now)
    assert pace.wait_time(1.0, now, behind=0.0) >= 0.095


def test_a_slow_pace_is_proven_good_by_ten_requests_not_by_one_second() -> None:
    """At one request a second (a real minute's 60 RPM), a second without a refusal proves nothing: the pace probes
    only after ten requests went at it with the server's bucket not draining."""
    learnt = 0.5
    pace = Pace()
    pace.start(64.0, learnt, 0.0, fastest=1.5, request=1.0)  # half way: 1/s
    assert pace.rate(learnt) == 1.0
    now = 0.0
    while now < 12.0:
        now += pace.wait_time(1.0, now, behind=0.0)
        pace.take(1.0, now)
        pace.wait_time(1.0, now, behind=0.0)  # the next one waits for the pace
        pace.probe(learnt, now, remaining=40.0, slack=1.0, fastest=1.5)
        if now < 10.0:
            assert pace.rate(learnt) == 1.0, now
    assert pace.rate(learnt) == (1.0 + 1.5) / 2.0
