"""Pure parsers for rate-limit and retry headers (Anthropic, OpenAI). Garbage values are ignored, never raised."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from .._models import BucketView, RateLimitSnapshot

__all__ = [
    "duration_resolution",
    "parse_anthropic_headers",
    "parse_duration",
    "parse_openai_headers",
    "parse_retry_after",
    "parse_should_retry",
]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def _lowered(headers: Mapping[str, str]) -> Mapping[str, str]:
    """A case-insensitive view: httpx2.Headers already is one; a plain dict is lower-cased once per parse."""
    if hasattr(headers, "multi_items"):
        return headers
    return {str(k).lower(): v for k, v in headers.items()}


def _get(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    return value if isinstance(value, str) else None


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = int(float(value.strip()))
    except (ValueError, OverflowError):  # "inf" overflows int()
        return None
    return number if number >= 0 else None


def _rfc3339(value: str | None) -> float | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    # Without an offset, read it as UTC (as the API means it), never as the machine's local time.
    return (when if when.tzinfo is not None else when.replace(tzinfo=UTC)).timestamp()


def parse_duration(value: str | None) -> float | None:
    """OpenAI's reset durations: "1s", "6m0s", "12ms", "1.5s", "1h2m3.5s"."""
    if not value:
        return None
    text = value.strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    # Milliseconds are divided, not multiplied by 0.001, so "9ms" is exactly 0.009.
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0}
    return sum(float(n) / 1000.0 if u == "ms" else float(n) * scale[u] for n, u in parts)


def duration_resolution(value: str) -> float:
    """How coarse a duration string is, i.e. its smallest unit: "20ms" 0.001, "1.5s" 0.1, "6m0s" 1.0."""
    text = value.strip()
    if text.endswith("ms"):
        return 0.001
    match = re.search(r"\.(\d+)s$", text)
    if match:
        return 10.0 ** -len(match.group(1))
    return 1.0 if text.endswith("s") else 60.0 if text.endswith("m") else 3600.0


def parse_retry_after(headers: Mapping[str, str], now_wall: float | None = None) -> float | None:
    """Seconds to wait: `retry-after-ms` first, then `retry-after` as seconds or an HTTP date (as the SDKs)."""
    headers = _lowered(headers)
    ms = _get(headers, "retry-after-ms")
    if ms is not None:
        try:
            value = float(ms) / 1000.0
        except ValueError:
            value = -1.0
        if math.isfinite(value) and value >= 0:
            return value
    raw = _get(headers, "retry-after")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if math.isfinite(value) and value >= 0:
        return value
    if not math.isnan(value):
        return None
    if now_wall is None:
        return None
    try:
        when = parsedate_to_datetime(raw).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - now_wall)


def parse_should_retry(headers: Mapping[str, str]) -> bool | None:
    """The `x-should-retry` header: True, False, or None when absent or unreadable."""
    value = (_get(_lowered(headers), "x-should-retry") or "").strip().lower()
    return True if value == "true" else False if value == "false" else None


def _rate_limit_fields(headers: Mapping[str, str], prefix: str) -> tuple[dict[str, str], dict[str, str]]:
    """One pass over the headers: the values named `prefix…` (by the rest of the name) and the retry headers.

    A response carries some twenty headers and the engine reads a dozen of them per response: looking each one
    up in a case-insensitive multi-dict scans the list again, so the list is walked once here instead."""
    fields: dict[str, str] = {}
    retry: dict[str, str] = {}
    raw = getattr(headers, "raw", None)  # httpx2.Headers: the byte pairs, as they came off the wire
    if isinstance(raw, list):
        bprefix = prefix.encode()
        for key, value in raw:
            key = key.lower()
            if key.startswith(bprefix):
                fields[key[len(bprefix) :].decode("latin-1")] = value.decode("latin-1")
            elif key.startswith(b"retry-after"):
                retry[key.decode("latin-1")] = value.decode("latin-1")
        return fields, retry
    for name, text in headers.items():
        if not isinstance(name, str) or not isinstance(text, str):
            continue
        name = name.lower()
        if name.startswith(prefix):
            fields[name[len(prefix) :]] = text
        elif name.startswith("retry-after"):
            retry[name] = text
    return fields, retry


def parse_anthropic_headers(headers: Mapping[str, str], now_wall: float) -> RateLimitSnapshot:
    """`anthropic-ratelimit-{requests,input-tokens,output-tokens,tokens}-{limit,remaining,reset}`."""
    fields, retry = _rate_limit_fields(headers, "anthropic-ratelimit-")

    def view(name: str) -> BucketView | None:
        limit = _int(fields.get(f"{name}-limit"))
        remaining = _int(fields.get(f"{name}-remaining"))
        if limit is None or remaining is None:
            return None
        reset = _rfc3339(fields.get(f"{name}-reset"))
        return BucketView(
            limit=limit,
            remaining=remaining,
            reset_in=0.0 if reset is None else max(0.0, reset - now_wall),
            # Requests are whole (floored); token counts are rounded to the nearest thousand.
            remaining_error=1.0 if name == "requests" else 501.0,
            # Whole-second timestamps, rounded one way or another: the true time is within a second either side.
            reset_error=math.inf if reset is None else 1.0,
            reset_absolute=True,
        )

    if not fields:  # no rate-limit headers at all (an emulator, a proxy): only the retry headers can matter
        return RateLimitSnapshot(retry_after=parse_retry_after(retry, now_wall) if retry else None)
    return RateLimitSnapshot(
        requests=view("requests"),
        input_tokens=view("input-tokens"),
        output_tokens=view("output-tokens"),
        tokens=view("tokens"),
        retry_after=parse_retry_after(retry, now_wall) if retry else None,
    )


def parse_openai_headers(headers: Mapping[str, str]) -> RateLimitSnapshot:
    """`x-ratelimit-{limit,remaining,reset}-{requests,tokens}` with duration resets."""
    fields, retry = _rate_limit_fields(headers, "x-ratelimit-")

    def view(name: str) -> BucketView | None:
        limit = _int(fields.get(f"limit-{name}"))
        remaining = _int(fields.get(f"remaining-{name}"))
        if limit is None or remaining is None:
            return None
        raw = fields.get(f"reset-{name}")
        reset = parse_duration(raw)
        return BucketView(
            limit=limit,
            remaining=remaining,
            reset_in=reset or 0.0,
            reset_error=math.inf if reset is None or raw is None else duration_resolution(raw),
        )

    retry_after = parse_retry_after(retry) if retry else None
    return RateLimitSnapshot(requests=view("requests"), tokens=view("tokens"), retry_after=retry_after)
