"""The retry decision table: what is retried, after how long, and what stops the whole run."""

from __future__ import annotations

import math
import random

import pytest

from sluicegate._exceptions import ConfigError
from sluicegate.retry import Outcome, RetryDecision, RetryPolicy, decide

POLICY = RetryPolicy(max_attempts=5, initial_delay=0.5, max_delay=60.0, max_retry_after=120.0)
# random.Random(7).random(): the first draw of the seeded generator, so full-jitter delays are cap * this.
SEED7_FIRST = 0.32383276483316237


def _decide(outcome: Outcome, attempt: int = 1, policy: RetryPolicy = POLICY) -> RetryDecision:
    return decide(policy, outcome, attempt, random.Random(7))


@pytest.mark.parametrize(
    ("outcome", "reason", "kind"),
    [
        (Outcome(status=401, error_type="authentication_error"), "authentication", "authentication"),
        (Outcome(status=403, error_type="permission_error"), "authentication", "authentication"),
        (Outcome(status=401, should_retry=True, retry_after=1.0), "authentication", "authentication"),
        (Outcome(status=402, error_type="billing_error"), "quota_exceeded", "quota_exceeded"),
        (Outcome(status=402), "quota_exceeded", "quota_exceeded"),
        (
            Outcome(status=429, error_type="rate_limit_error", error_code="enforced_spend_limit_reached"),
            "quota_exceeded",
            "quota_exceeded",
        ),
        (
            Outcome(status=429, error_type="insufficient_quota", error_code="insufficient_quota", should_retry=True),
            "quota_exceeded",
            "quota_exceeded",
        ),
        (Outcome(status=429, error_code="insufficient_quota", retry_after=2.0), "quota_exceeded", "quota_exceeded"),
    ],
)
def test_bad_key_and_spend_cap_abort_the_run(outcome: Outcome, reason: str, kind: str) -> None:
    """401/403 and quota 402/429s are never retried and stop the whole run, whatever the headers say."""
    assert _decide(outcome) == RetryDecision(False, 0.0, reason, kind, abort_run=True)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [400, 404, 413, 422])
@pytest.mark.parametrize("should_retry", [None, True, False])
def test_invalid_requests_are_never_retried(status: int, should_retry: bool | None) -> None:
    """400/404/413/422 fail the item at once, even when x-should-retry says true; the run goes on."""
    outcome = Outcome(status=status, error_type="invalid_request_error", should_retry=should_retry, retry_after=1.0)
    assert _decide(outcome) == RetryDecision(False, 0.0, "invalid_request", "invalid_request")


@pytest.mark.parametrize("status", [405, 410, 418, 451])
def test_other_client_errors_are_not_retried(status: int) -> None:
    """A 4xx outside the retryable set (408/409/429) is final."""
    assert _decide(Outcome(status=status)) == RetryDecision(False, 0.0, "invalid_request", "invalid_request")


@pytest.mark.parametrize(
    ("outcome", "reason", "kind", "cooldown"),
    [
        (Outcome(status=408), "request_timeout", "server", False),
        (Outcome(status=409, error_type="conflict_error"), "conflict", "server", False),
        (Outcome(status=429, error_type="rate_limit_error"), "rate_limited", "rate_limited", True),
        (
            Outcome(status=429, error_type="tokens", error_code="rate_limit_exceeded"),
            "rate_limited",
            "rate_limited",
            True,
        ),
        (Outcome(status=500, error_type="api_error"), "server", "server", False),
        (Outcome(status=503), "server", "server", False),
        (Outcome(status=504, error_type="timeout_error"), "server", "server", False),
        (Outcome(status=503, error_type="overloaded_error"), "overloaded", "overloaded", False),
        (Outcome(status=529, error_type="overloaded_error"), "overloaded", "overloaded", False),
        (Outcome(failure="connect"), "connect", "connect", False),
        (Outcome(failure="transport"), "transport", "transport", False),
        (Outcome(failure="timeout"), "timeout", "timeout", False),
        (Outcome(failure="truncated"), "truncated", "transport", False),
        (Outcome(status=500, should_retry=True), "server", "server", False),
    ],
)
def test_transient_failures_are_retried_with_backoff(outcome: Outcome, reason: str, kind: str, cooldown: bool) -> None:
    """408/409/429/5xx/529 and transport failures retry after the first full-jitter delay; only 429 cools down."""
    expected = RetryDecision(True, 0.5 * SEED7_FIRST, reason, kind, cooldown=cooldown)  # type: ignore[arg-type]
    assert _decide(outcome) == expected


@pytest.mark.parametrize(
    ("status", "reason", "kind"),
    [
        (500, "server", "server"),
        (529, "overloaded", "overloaded"),
        (429, "rate_limited", "rate_limited"),
        (408, "request_timeout", "server"),
    ],
)
def test_should_retry_false_stops_a_retryable_status(status: int, reason: str, kind: str) -> None:
    """x-should-retry: false makes an otherwise retryable failure final, with its own kind kept."""
    outcome = Outcome(status=status, should_retry=False, retry_after=1.0)
    assert _decide(outcome) == RetryDecision(False, 0.0, reason, kind)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("outcome", "delay", "cooldown"),
    [
        (Outcome(status=429, retry_after=16.0), 16.0, True),
        (Outcome(status=429, retry_after=0.0), 0.0, True),
        (Outcome(status=429, retry_after=120.0), 120.0, True),
        (Outcome(status=529, retry_after=3.0), 3.0, False),
        (Outcome(status=500, retry_after=0.25), 0.25, False),
        (Outcome(failure="timeout", retry_after=2.0), 2.0, False),
    ],
)
def test_retry_after_wins_without_jitter(outcome: Outcome, delay: float, cooldown: bool) -> None:
    """The server's wait is used exactly (no jitter, no cap at max_delay); only a 429 pauses everyone."""
    decision = decide(POLICY, outcome, 3, random.Random(7))
    assert (decision.retry, decision.delay, decision.cooldown) == (True, delay, cooldown)


def test_negative_retry_after_falls_back_to_backoff() -> None:
    """A negative server wait is ignored and the jittered backoff applies."""
    assert _decide(Outcome(status=429, retry_after=-1.0)).delay == 0.5 * SEED7_FIRST


@pytest.mark.parametrize(("status", "kind"), [(429, "rate_limited"), (503, "server"), (529, "overloaded")])
def test_retry_after_above_the_cap_gives_up(status: int, kind: str) -> None:
    """A server wait above max_retry_after fails the item instead of parking it."""
    decision = _decide(Outcome(status=status, retry_after=120.5))
    assert decision == RetryDecision(False, 0.0, "retry_after_too_long", kind)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("attempt", "delay"),
    [
        (1, 0.16191638241658118),  # cap 0.5
        (2, 0.32383276483316237),  # cap 1.0
        (3, 0.6476655296663247),  # cap 2.0
        (4, 1.2953310593326495),  # cap 4.0
    ],
)
def test_full_jitter_backoff_with_a_seeded_rng(attempt: int, delay: float) -> None:
    """The n-th retry waits uniform(0, initial * 2**(n-1)): exact with a seeded generator."""
    policy = RetryPolicy(max_attempts=100, initial_delay=0.5, max_delay=60.0)
    assert decide(policy, Outcome(status=500), attempt, random.Random(7)).delay == delay


@pytest.mark.parametrize("attempt", [8, 20, 99])
def test_backoff_is_capped_at_max_delay(attempt: int) -> None:
    """Once initial * 2**(n-1) passes max_delay, the jitter range is [0, max_delay]."""
    policy = RetryPolicy(max_attempts=100, initial_delay=0.5, max_delay=60.0)
    assert decide(policy, Outcome(status=500), attempt, random.Random(7)).delay == 60.0 * SEED7_FIRST


def test_backoff_stays_within_bounds_over_many_draws() -> None:
    """Every jittered delay lies in [0, cap] for the attempt, over many seeded draws."""
    policy = RetryPolicy(max_attempts=100, initial_delay=0.5, max_delay=8.0)
    rng = random.Random(1)
    for attempt in range(1, 12):
        cap = min(8.0, 0.5 * 2 ** (attempt - 1))
        delays = [decide(policy, Outcome(failure="connect"), attempt, rng).delay for _ in range(200)]
        assert min(delays) >= 0.0
        assert max(delays) <= cap
        assert max(delays) > 0.9 * cap  # the range is really used, not a constant


def test_zero_initial_delay_retries_immediately() -> None:
    """initial_delay 0 means retry at once."""
    policy = RetryPolicy(initial_delay=0.0)
    assert decide(policy, Outcome(status=500), 3, random.Random(7)) == RetryDecision(True, 0.0, "server", "server")


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [
        (1, RetryDecision(True, 0.5 * SEED7_FIRST, "overloaded", "overloaded")),
        (4, RetryDecision(True, 4.0 * SEED7_FIRST, "overloaded", "overloaded")),
        (5, RetryDecision(False, 0.0, "attempts_exhausted", "overloaded")),
        (6, RetryDecision(False, 0.0, "attempts_exhausted", "overloaded")),
    ],
)
def test_attempts_exhausted(attempt: int, expected: RetryDecision) -> None:
    """With max_attempts=5, the 5th failed attempt is final; the kind records what kept failing."""
    assert _decide(Outcome(status=529), attempt) == expected


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (Outcome(status=500), RetryDecision(False, 0.0, "attempts_exhausted", "server")),
        (Outcome(failure="truncated"), RetryDecision(False, 0.0, "attempts_exhausted", "transport")),
        (Outcome(status=408), RetryDecision(False, 0.0, "attempts_exhausted", "server")),
        (Outcome(status=429, retry_after=16.0), RetryDecision(False, 0.0, "attempts_exhausted", "rate_limited")),
        (Outcome(status=429), RetryDecision(False, 0.0, "attempts_exhausted", "rate_limited")),
        (Outcome(status=429, retry_after=1000.0), RetryDecision(False, 0.0, "attempts_exhausted", "rate_limited")),
        (Outcome(status=500, retry_after=1000.0), RetryDecision(False, 0.0, "attempts_exhausted", "server")),
    ],
)
def test_single_attempt_policy_never_retries(outcome: Outcome, expected: RetryDecision) -> None:
    """max_attempts=1 turns retries off; the reason says the attempts ran out, the kind what failed."""
    policy = RetryPolicy(max_attempts=1, max_retry_after=120.0)
    assert decide(policy, outcome, 1, random.Random(7)) == expected


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (Outcome(status=429, retry_after=5.0), RetryDecision(True, 5.0, "rate_limited", "rate_limited", cooldown=True)),
        (
            Outcome(status=429, retry_after=5.0, elapsed=5.0),  # lands exactly on the deadline
            RetryDecision(True, 5.0, "rate_limited", "rate_limited", cooldown=True),
        ),
        (
            Outcome(status=429, retry_after=5.5, elapsed=5.0),
            RetryDecision(False, 0.0, "deadline_exceeded", "rate_limited"),
        ),
        (
            Outcome(status=429, retry_after=0.2, elapsed=9.9),
            RetryDecision(False, 0.0, "deadline_exceeded", "rate_limited"),
        ),
        (
            Outcome(status=429, retry_after=0.0, elapsed=10.0),
            RetryDecision(True, 0.0, "rate_limited", "rate_limited", cooldown=True),
        ),
        (
            Outcome(status=429, elapsed=20.0),
            RetryDecision(False, 0.0, "deadline_exceeded", "rate_limited"),
        ),
        (Outcome(status=503, retry_after=3.0, elapsed=8.0), RetryDecision(False, 0.0, "deadline_exceeded", "server")),
        (Outcome(failure="connect", elapsed=9.0), RetryDecision(True, 1.0 * SEED7_FIRST, "connect", "connect")),
        (Outcome(failure="connect", elapsed=9.9), RetryDecision(False, 0.0, "deadline_exceeded", "connect")),
    ],
)
def test_deadline(outcome: Outcome, expected: RetryDecision) -> None:
    """A retry that would start after the item's deadline is not taken; the kind still says what failed."""
    policy = RetryPolicy(max_attempts=10, deadline=10.0)
    assert decide(policy, outcome, 2, random.Random(7)) == expected


def test_attempts_are_checked_before_the_retry_after_cap() -> None:
    """On the last attempt a too-long server wait reports the attempts running out, not the cap."""
    decision = _decide(Outcome(status=503, retry_after=500.0), attempt=5)
    assert decision == RetryDecision(False, 0.0, "attempts_exhausted", "server")


def test_default_policy_values() -> None:
    """The defaults: 10 attempts, 0.5 s initial, 20 s max backoff, 900 s max server wait, no deadline, 10 s
    of nothing but failed connections before the run stops, and the breaker's thresholds and probe intervals."""
    assert RetryPolicy() == RetryPolicy(
        max_attempts=10, initial_delay=0.5, max_delay=20.0, max_retry_after=900.0, deadline=None, unreachable_after=10.0
    )
    # The breaker: trips at 8 overloads among the last 20 answers (and half of them), probes every 0.5 s.
    assert (
        RetryPolicy().breaker_window,
        RetryPolicy().breaker_min_failures,
        RetryPolicy().breaker_trip_ratio,
        RetryPolicy().breaker_probe_interval,
        RetryPolicy().breaker_max_probe_interval,
    ) == (20, 8, 0.5, 0.5, 0.5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"max_attempts": -1},
        {"initial_delay": -0.1},
        {"max_delay": -1.0},
        {"max_retry_after": -1.0},
        {"deadline": 0.0},
        {"deadline": -5.0},
        {"deadline": math.nan},
        {"initial_delay": math.nan},
        {"max_delay": math.inf},
        {"max_retry_after": math.nan},
        {"max_attempts": 2.5},
        {"max_attempts": True},
        {"breaker_window": 0},
        {"breaker_min_failures": 0},
        {"breaker_min_failures": 21},
        {"breaker_window": 2.5},
        {"breaker_trip_ratio": 0.0},
        {"breaker_trip_ratio": 1.5},
        {"breaker_trip_ratio": math.nan},
        {"breaker_probe_interval": 0.0},
        {"breaker_probe_interval": math.inf},
        {"breaker_max_probe_interval": 0.1},
    ],
)
def test_policy_validation(kwargs: dict[str, float]) -> None:
    """Nonsense policies are refused at construction with a ConfigError."""
    with pytest.raises(ConfigError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_infinite_caps_are_accepted() -> None:
    """An infinite max_retry_after or deadline means no limit, so any server wait is honoured."""
    policy = RetryPolicy(max_retry_after=math.inf, deadline=math.inf)
    decision = decide(policy, Outcome(status=429, retry_after=86_400.0), 1, random.Random(7))
    assert decision == RetryDecision(True, 86_400.0, "rate_limited", "rate_limited", cooldown=True)


def test_policy_is_frozen_and_keyword_only() -> None:
    """RetryPolicy is an immutable, keyword-only value object."""
    policy = RetryPolicy()
    with pytest.raises(AttributeError):
        policy.max_attempts = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        RetryPolicy(3)  # type: ignore[call-arg]
