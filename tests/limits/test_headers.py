"""Rate-limit and retry header parsers on real captures and on missing, garbage and oddly cased values."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import httpx2
import pytest

from sluicegate._models import BucketView, RateLimitSnapshot
from sluicegate.limits.headers import (
    parse_anthropic_headers,
    parse_duration,
    parse_openai_headers,
    parse_retry_after,
    parse_should_retry,
)

# The real 200 header set (Tier 1 Opus 4.x, 2026-02-25), received one second before the requests reset.
CAPTURE_200 = {
    "anthropic-ratelimit-input-tokens-limit": "30000",
    "anthropic-ratelimit-input-tokens-remaining": "28000",
    "anthropic-ratelimit-input-tokens-reset": "2026-02-25T20:02:37Z",
    "anthropic-ratelimit-output-tokens-limit": "8000",
    "anthropic-ratelimit-output-tokens-remaining": "8000",
    "anthropic-ratelimit-output-tokens-reset": "2026-02-25T20:02:36Z",
    "anthropic-ratelimit-requests-limit": "50",
    "anthropic-ratelimit-requests-remaining": "49",
    "anthropic-ratelimit-requests-reset": "2026-02-25T20:02:32Z",
    "anthropic-ratelimit-tokens-limit": "38000",
    "anthropic-ratelimit-tokens-remaining": "36000",
    "anthropic-ratelimit-tokens-reset": "2026-02-25T20:02:36Z",
    "request-id": "req_011CYHyk9NPsBYeGbC9LuDNK",
    "content-type": "application/json",
}
NOW_200 = datetime(2026, 2, 25, 20, 2, 31, tzinfo=UTC).timestamp()

# The real 429 header set (2025-06-02): input tokens exhausted, the other dimensions at their maximum.
CAPTURE_429 = {
    "x-should-retry": "true",
    "retry-after": "16",
    "anthropic-ratelimit-input-tokens-limit": "200000",
    "anthropic-ratelimit-input-tokens-remaining": "0",
    "anthropic-ratelimit-input-tokens-reset": "2025-06-02T15:15:48Z",
    "anthropic-ratelimit-output-tokens-limit": "80000",
    "anthropic-ratelimit-output-tokens-remaining": "80000",
    "anthropic-ratelimit-output-tokens-reset": "2025-06-02T15:15:32Z",
    "anthropic-ratelimit-requests-limit": "4000",
    "anthropic-ratelimit-requests-remaining": "4000",
    "anthropic-ratelimit-requests-reset": "2025-06-02T15:15:32Z",
    "anthropic-ratelimit-tokens-limit": "280000",
    "anthropic-ratelimit-tokens-remaining": "80000",
    "anthropic-ratelimit-tokens-reset": "2025-06-02T15:15:48Z",
}
NOW_429 = datetime(2025, 6, 2, 15, 15, 32, tzinfo=UTC).timestamp()


def test_anthropic_real_200_capture() -> None:
    """All four buckets of a real 200 response, with resets as seconds from arrival."""
    assert parse_anthropic_headers(CAPTURE_200, NOW_200) == RateLimitSnapshot(
        requests=BucketView(limit=50, remaining=49, reset_in=1.0),
        input_tokens=BucketView(limit=30000, remaining=28000, reset_in=6.0),
        output_tokens=BucketView(limit=8000, remaining=8000, reset_in=5.0),
        tokens=BucketView(limit=38000, remaining=36000, reset_in=5.0),
        retry_after=None,
    )


def test_anthropic_real_429_capture() -> None:
    """A real 429: the exhausted input bucket, retry-after 16 s and x-should-retry true."""
    snapshot = parse_anthropic_headers(CAPTURE_429, NOW_429)
    assert snapshot == RateLimitSnapshot(
        requests=BucketView(limit=4000, remaining=4000, reset_in=0.0),
        input_tokens=BucketView(limit=200000, remaining=0, reset_in=16.0),
        output_tokens=BucketView(limit=80000, remaining=80000, reset_in=0.0),
        tokens=BucketView(limit=280000, remaining=80000, reset_in=16.0),
        retry_after=16.0,
    )
    assert parse_should_retry(CAPTURE_429) is True


def test_anthropic_capture_through_httpx2_headers() -> None:
    """httpx2.Headers (case-insensitive, as the engine receives them) parse the same as a plain dict."""
    headers = httpx2.Headers({k.upper(): v for k, v in CAPTURE_429.items()})
    assert parse_anthropic_headers(headers, NOW_429) == parse_anthropic_headers(CAPTURE_429, NOW_429)
    assert parse_should_retry(headers) is True


def test_plain_dict_with_odd_casing() -> None:
    """A plain dict with mixed-case names is read case-insensitively."""
    odd = {k.title(): v for k, v in CAPTURE_200.items()}
    odd["Anthropic-RateLimit-Requests-Limit"] = odd.pop("Anthropic-Ratelimit-Requests-Limit")
    assert parse_anthropic_headers(odd, NOW_200) == parse_anthropic_headers(CAPTURE_200, NOW_200)
    assert parse_retry_after({"RETRY-AFTER": "7"}) == 7.0
    assert parse_should_retry({"X-Should-Retry": "False"}) is False


def test_non_string_values_in_a_plain_dict_are_ignored() -> None:
    """A dict built by hand with numbers or None as values never raises; those headers count as absent."""
    odd: dict[str, object] = dict(CAPTURE_200)
    odd["anthropic-ratelimit-requests-limit"] = 50
    odd["retry-after"] = None
    odd["x-should-retry"] = True
    snapshot = parse_anthropic_headers(odd, NOW_200)  # type: ignore[arg-type]
    assert snapshot.requests is None
    assert snapshot.input_tokens == parse_anthropic_headers(CAPTURE_200, NOW_200).input_tokens
    assert snapshot.retry_after is None
    assert parse_should_retry(odd) is None  # type: ignore[arg-type]


def test_reset_in_the_past_is_zero() -> None:
    """A reset time already passed (clock skew) means the bucket is full now, not a negative wait."""
    late = NOW_200 + 100.0
    snapshot = parse_anthropic_headers(CAPTURE_200, late)
    assert snapshot.requests == BucketView(limit=50, remaining=49, reset_in=0.0)


def test_no_headers_give_an_empty_snapshot() -> None:
    """A response without rate-limit headers (an emulator, a proxy) yields an empty snapshot."""
    snapshot = parse_anthropic_headers({"content-type": "application/json"}, NOW_200)
    assert snapshot == RateLimitSnapshot()
    assert snapshot.empty
    assert parse_openai_headers({}) == RateLimitSnapshot()


@pytest.mark.parametrize(
    ("limit", "remaining", "expected"),
    [
        ("50", "49", BucketView(50, 49, 1.0)),
        (" 50 ", "49", BucketView(50, 49, 1.0)),
        ("50", None, None),
        (None, "49", None),
        ("", "49", None),
        ("fifty", "49", None),
        ("50", "lots", None),
        ("nan", "49", None),
        ("inf", "49", None),
        ("-50", "49", None),
        ("50", "-1", None),
    ],
)
def test_missing_or_garbage_counts_drop_the_bucket(limit: str | None, remaining: str | None, expected: object) -> None:
    """A bucket needs a parseable, non-negative limit and remaining; anything else is ignored, never raised."""
    headers = {"anthropic-ratelimit-requests-reset": "2026-02-25T20:02:32Z"}
    if limit is not None:
        headers["anthropic-ratelimit-requests-limit"] = limit
    if remaining is not None:
        headers["anthropic-ratelimit-requests-remaining"] = remaining
    assert parse_anthropic_headers(headers, NOW_200).requests == expected


@pytest.mark.parametrize(
    ("reset", "reset_in"),
    [
        ("2026-02-25T20:02:37Z", 6.0),
        ("2026-02-25T20:02:37.250Z", 6.25),
        ("2026-02-25T20:02:37+00:00", 6.0),
        ("2026-02-25T21:02:37+01:00", 6.0),
        ("2026-02-25T20:02:37", 6.0),  # no offset: read as UTC
        ("garbage", 0.0),
        ("", 0.0),
        (None, 0.0),
    ],
)
def test_rfc3339_reset_forms(reset: str | None, reset_in: float) -> None:
    """Resets in every RFC 3339 form become seconds from arrival; an unreadable reset counts as now."""
    headers = {"anthropic-ratelimit-input-tokens-limit": "30000", "anthropic-ratelimit-input-tokens-remaining": "0"}
    if reset is not None:
        headers["anthropic-ratelimit-input-tokens-reset"] = reset
    assert parse_anthropic_headers(headers, NOW_200).input_tokens == BucketView(30000, 0, reset_in)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("12ms", 0.012),
        ("9ms", 0.009),
        ("1.5s", 1.5),
        ("1h2m3.5s", 3723.5),
        ("2h", 7200.0),
        ("0s", 0.0),
        (" 1s ", 1.0),
        ("", None),
        (None, None),
        ("abc", None),
        ("1", None),
        ("s", None),
        ("1.s", None),
        ("-1s", None),
        ("1m30", None),
        ("1d", None),
        ("1S", None),
        ("1s garbage", None),
    ],
)
def test_openai_durations(text: str | None, seconds: float | None) -> None:
    """OpenAI reset durations parse to seconds; anything not wholly a duration is None."""
    assert parse_duration(text) == seconds


def test_openai_documented_header_set() -> None:
    """The docs' header table: requests and tokens buckets with duration resets, no input/output split."""
    headers = {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-limit-tokens": "150000",
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-remaining-tokens": "149984",
        "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-reset-tokens": "6m0s",
        "x-request-id": "req_abc",
    }
    assert parse_openai_headers(headers) == RateLimitSnapshot(
        requests=BucketView(limit=60, remaining=59, reset_in=1.0),
        tokens=BucketView(limit=150000, remaining=149984, reset_in=360.0),
    )


def test_openai_garbage_reset_and_retry_after() -> None:
    """An unreadable OpenAI reset counts as now; retry-after-ms on a 429 is picked up."""
    headers = httpx2.Headers(
        {
            "X-RateLimit-Limit-Tokens": "30000",
            "X-RateLimit-Remaining-Tokens": "0",
            "X-RateLimit-Reset-Tokens": "soon",
            "retry-after-ms": "18642",
        }
    )
    assert parse_openai_headers(headers) == RateLimitSnapshot(
        tokens=BucketView(limit=30000, remaining=0, reset_in=0.0), retry_after=18.642
    )


HTTP_DATE_NOW = datetime(2015, 10, 21, 7, 27, 50, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("headers", "now_wall", "seconds"),
    [
        ({}, None, None),
        ({"retry-after": "16"}, None, 16.0),
        ({"retry-after": " 3 "}, None, 3.0),
        ({"retry-after": "0.5"}, None, 0.5),
        ({"retry-after": "0"}, None, 0.0),
        ({"retry-after-ms": "1500", "retry-after": "16"}, None, 1.5),
        ({"retry-after-ms": "0", "retry-after": "16"}, None, 0.0),
        ({"retry-after-ms": "soon", "retry-after": "16"}, None, 16.0),
        ({"retry-after-ms": "-1", "retry-after": "2"}, None, 2.0),
        ({"retry-after-ms": "nan", "retry-after": "2"}, None, 2.0),
        ({"retry-after-ms": "inf", "retry-after": "2"}, None, 2.0),
        ({"retry-after": "-5"}, None, None),
        ({"retry-after": ""}, None, None),
        ({"retry-after": "nan"}, None, None),
        ({"retry-after": "inf"}, None, None),
        ({"retry-after": "soon"}, HTTP_DATE_NOW, None),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, HTTP_DATE_NOW, 10.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, HTTP_DATE_NOW + 60.0, 0.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, None, None),  # a date needs the wall clock
    ],
)
def test_retry_after(headers: dict[str, str], now_wall: float | None, seconds: float | None) -> None:
    """retry-after-ms first, then retry-after as seconds or an HTTP date; garbage is ignored."""
    assert parse_retry_after(headers, now_wall) == seconds


def test_http_date_retry_after_in_anthropic_snapshot() -> None:
    """The Anthropic parser passes the wall clock through, so an HTTP-date retry-after becomes seconds."""
    snapshot = parse_anthropic_headers({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, HTTP_DATE_NOW)
    assert snapshot.retry_after == 10.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("false", False), ("TRUE", True), (" false ", False), ("yes", None), ("", None), (None, None)],
)
def test_should_retry(value: str | None, expected: bool | None) -> None:
    """x-should-retry is true, false or absent; any other value counts as absent."""
    headers = {} if value is None else {"x-should-retry": value}
    assert parse_should_retry(headers) is expected


def test_each_view_says_how_coarse_its_numbers_are() -> None:
    """Anthropic: requests exact to 1, tokens to the thousand, resets to the second; OpenAI: the duration's unit."""
    anthropic = parse_anthropic_headers(
        {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "49",
            "anthropic-ratelimit-requests-reset": "2026-02-25T20:02:32Z",
            "anthropic-ratelimit-input-tokens-limit": "30000",
            "anthropic-ratelimit-input-tokens-remaining": "28000",
        },
        now_wall=1772049750.0,
    )
    assert anthropic.requests is not None
    assert (anthropic.requests.remaining_error, anthropic.requests.reset_error) == (1.0, 1.0)
    assert anthropic.input_tokens is not None
    assert anthropic.input_tokens.remaining_error == 501.0
    assert anthropic.input_tokens.reset_error == math.inf  # no reset header: nothing to learn a window from
    openai = parse_openai_headers(
        {
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-remaining-requests": "59",
            "x-ratelimit-reset-requests": "20ms",
            "x-ratelimit-limit-tokens": "150000",
            "x-ratelimit-remaining-tokens": "149984",
            "x-ratelimit-reset-tokens": "6m0s",
        }
    )
    assert openai.requests is not None
    assert openai.requests.reset_error == 0.001
    assert openai.tokens is not None
    assert openai.tokens.reset_error == 1.0
