"""Per (API key, model class) request / input / output token buckets and their response headers."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

from sluicegate.emulator.bucket import Bucket, retry_after
from sluicegate.emulator.config import COUNT_TOKENS_RPM, EmulatorConfig
from sluicegate.emulator.openai_format import format_duration


def model_class(model: str) -> str:
    """Limits are shared by a model family (opus / sonnet / haiku), not per dated id."""
    for family in ("opus", "sonnet", "haiku"):
        if family in model:
            return family
    return model


class RateLimited(Exception):
    """The request exceeds a bucket: 429 with `retry_after` real seconds."""

    def __init__(self, retry_after: int, bucket: str, headers: dict[str, str]) -> None:
        super().__init__(f"rate limited on {bucket}")
        self.retry_after = retry_after
        self.bucket = bucket
        self.headers = headers


_STAMPS: dict[int, str] = {}  # whole second -> its RFC 3339 text; a handful of seconds are live at a time


def _rfc3339(t: float) -> str:
    """`datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")`, formatted once per whole second."""
    second = math.floor(t)
    # fromtimestamp rounds to the microsecond (half to even), which can carry into the next second.
    if (t - second) * 1e6 >= 999_999.5:
        second += 1
    text = _STAMPS.get(second)
    if text is None:
        if len(_STAMPS) >= 256:
            _STAMPS.clear()
        text = _STAMPS[second] = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return text


def _thousands(tokens: float) -> int:
    """Token `*-remaining` values as Anthropic sends them: rounded to the nearest thousand (half up)."""
    return int(max(0.0, tokens) + 500) // 1000 * 1000


def _full_in(bucket: Bucket, level: float) -> float:
    """`bucket.full_in(now)` given `bucket.level(now)` already read."""
    missing = bucket.capacity - level
    return 0.0 if missing <= 0 else missing / bucket.rate


class Buckets:
    """The buckets of one (key, model class): requests, input and output tokens (Anthropic), and the single
    tokens-per-minute bucket of the OpenAI route, whose limit is the configured input-token limit."""

    def __init__(self, rpm: int, itpm: int, otpm: int, minute: float, now: float, burst: int | None) -> None:
        self.requests = Bucket(rpm, period=minute, now=now)
        self.input = Bucket(itpm, period=minute, now=now)
        self.output = Bucket(otpm, period=minute, now=now)
        self.tokens = Bucket(itpm, period=minute, now=now)
        # A short-interval cap: `burst` requests refilled over one emulated second-scale slice of the minute.
        self.burst = Bucket(burst, period=minute * burst / rpm, now=now) if burst else None


class Charge:
    """An admitted request; settle its output tokens with `finish`."""

    def __init__(self, limits: ServerLimits, buckets: Buckets, reserved: int) -> None:
        self._limits = limits
        self._buckets = buckets
        self._reserved = reserved
        self._finished = False
        self._counted: dict[str, str] | None = None  # the headers as counted at admission, when the server does

    def count_now(self, style: Literal["anthropic", "openai"]) -> None:
        """Fix the headers this answer will carry as they stand now (a server counting at admission)."""
        self._counted = self._limits.headers(self._buckets, style)

    def finish(self, output_tokens: int) -> None:
        """Charge produced output tokens (or refund the unused part of the reservation)."""
        if self._finished:
            return
        self._finished = True
        now = self._limits.now()
        if self._reserved:
            self._buckets.output.refund(max(0, self._reserved - output_tokens), now)
        else:
            self._buckets.output.take(output_tokens, now)

    def headers(self, style: Literal["anthropic", "openai"] = "anthropic") -> dict[str, str]:
        """Rate-limit headers as they stand now, or as counted at admission."""
        if self._counted is not None:
            return dict(self._counted)
        return self._limits.headers(self._buckets, style)


class OpenAICharge(Charge):
    """An admitted chat completion: prompt + max_tokens were charged to the TPM bucket; `finish` refunds the
    part of max_tokens the answer did not use, as OpenAI settles its estimate when the request ends."""

    def finish(self, output_tokens: int) -> None:
        if self._finished:
            return
        self._finished = True
        self._buckets.tokens.refund(max(0, self._reserved - output_tokens), self._limits.now())

    def headers(self, style: Literal["anthropic", "openai"] = "openai") -> dict[str, str]:
        return super().headers("openai")


class ServerLimits:
    """All buckets of one emulator, keyed by (api_key, model class)."""

    def __init__(self, config: EmulatorConfig, now: Callable[[], float]) -> None:
        self.config = config
        self.now = now
        self._scale = config.minute / 60.0
        self._buckets: dict[tuple[str, str], Buckets] = {}
        self._count_buckets: dict[str, Bucket] = {}

    def buckets(self, api_key: str, model: str) -> Buckets:
        """The buckets for this key and model class, created full like a fresh account's."""
        key = (api_key, model_class(model))
        found = self._buckets.get(key)
        if found is None:
            rpm, itpm, otpm = self.config.limits(key[1])
            found = Buckets(rpm, itpm, otpm, self.config.minute, self.now(), self.config.burst)
            self._buckets[key] = found
        return found

    def admit(self, api_key: str, model: str, input_tokens: int, max_tokens: int) -> Charge:
        """Take one request and its input tokens, or raise RateLimited with an honest retry-after."""
        b = self.buckets(api_key, model)
        now = self.now()
        reserve = max_tokens if self.config.output_accounting == "reserved" else 0
        checks = [("requests", b.requests, 1.0), ("input_tokens", b.input, float(input_tokens))]
        if b.burst is not None:
            checks.append(("requests", b.burst, 1.0))
        # Produced mode still refuses when the output bucket is already exhausted.
        checks.append(("output_tokens", b.output, float(max(reserve, 1))))
        self._refuse_if_short(b, checks, now, "anthropic")
        b.requests.take(1, now)
        if b.burst is not None:
            b.burst.take(1, now)
        b.input.take(input_tokens, now)
        if reserve:
            b.output.take(reserve, now)
        charge = Charge(self, b, reserve)
        if self.config.headers_counted == "admission":
            charge.count_now("anthropic")
        return charge

    def _refuse_if_short(
        self,
        b: Buckets,
        checks: list[tuple[str, Bucket, float]],
        now: float,
        flavor: Literal["anthropic", "openai"],
    ) -> None:
        """Raise RateLimited for the first bucket that cannot pay its amount now; nothing is taken before all can."""
        for name, bucket, amount in checks:
            wait = bucket.wait_time(amount, now)
            if wait > 0:
                raise RateLimited(retry_after(wait), name, self.headers(b, flavor))

    def admit_openai(self, api_key: str, model: str, prompt_tokens: int, max_tokens: int) -> OpenAICharge:
        """OpenAI's accounting: one tokens-per-minute bucket charged prompt + max_tokens up front (refunded down
        to the real completion at the end), plus requests per minute; or RateLimited."""
        b = self.buckets(api_key, model)
        now = self.now()
        charge = float(prompt_tokens + max_tokens)
        checks = [("requests", b.requests, 1.0), ("tokens", b.tokens, charge)]
        if b.burst is not None:
            checks.append(("requests", b.burst, 1.0))
        self._refuse_if_short(b, checks, now, "openai")
        b.requests.take(1, now)
        if b.burst is not None:
            b.burst.take(1, now)
        b.tokens.take(charge, now)
        admitted = OpenAICharge(self, b, max_tokens)
        if self.config.headers_counted == "admission":
            admitted.count_now("openai")
        return admitted

    def admit_count(self, api_key: str) -> None:
        """Take one count_tokens request from the key's own bucket (separate from Messages) or raise RateLimited."""
        bucket = self._count_buckets.get(api_key)
        now = self.now()
        if bucket is None:
            rpm = self.config.count_tokens_rpm or COUNT_TOKENS_RPM.get(self.config.tier, COUNT_TOKENS_RPM[4])
            bucket = self._count_buckets[api_key] = Bucket(rpm, period=self.config.minute, now=now)
        wait = bucket.wait_time(1, now)
        if wait > 0:
            raise RateLimited(retry_after(wait), "count_tokens", {})
        bucket.take(1, now)

    def headers(self, b: Buckets, style: Literal["anthropic", "openai"]) -> dict[str, str]:
        """Limits and remaining per emulated minute; resets in real wall-clock time.

        Anthropic style: requests remaining exact, token remaining rounded to the nearest thousand, resets as
        RFC 3339 whole-second timestamps of full replenishment. OpenAI style: exact values, duration resets.
        """
        now = self.now()
        if style == "openai":
            out: dict[str, str] = {}
            for name, bucket in (("requests", b.requests), ("tokens", b.tokens)):
                out[f"x-ratelimit-limit-{name}"] = str(int(bucket.capacity))
                out[f"x-ratelimit-remaining-{name}"] = str(max(0, int(bucket.level(now))))
                out[f"x-ratelimit-reset-{name}"] = format_duration(bucket.full_in(now))
            return out
        requests, inputs, outputs = b.requests, b.input, b.output
        # Each level is read once: a second read at the same `now` returns the same value (full_in reads it too).
        req_level, in_level, out_level = requests.level(now), inputs.level(now), outputs.level(now)
        in_full, out_full = _full_in(inputs, in_level), _full_in(outputs, out_level)
        in_left, out_left = max(0, int(in_level)), max(0, int(out_level))
        wall = time.time()  # read once: every reset stamp of one response counts from the same instant
        return {
            "anthropic-ratelimit-requests-limit": str(int(requests.capacity)),
            "anthropic-ratelimit-requests-remaining": str(max(0, int(req_level))),
            "anthropic-ratelimit-requests-reset": _rfc3339(wall + _full_in(requests, req_level)),
            "anthropic-ratelimit-input-tokens-limit": str(int(inputs.capacity)),
            "anthropic-ratelimit-input-tokens-remaining": str(_thousands(in_left)),
            "anthropic-ratelimit-input-tokens-reset": _rfc3339(wall + in_full),
            "anthropic-ratelimit-output-tokens-limit": str(int(outputs.capacity)),
            "anthropic-ratelimit-output-tokens-remaining": str(_thousands(out_left)),
            "anthropic-ratelimit-output-tokens-reset": _rfc3339(wall + out_full),
            "anthropic-ratelimit-tokens-limit": str(int(inputs.capacity + outputs.capacity)),
            "anthropic-ratelimit-tokens-remaining": str(_thousands(in_left + out_left)),
            "anthropic-ratelimit-tokens-reset": _rfc3339(wall + max(in_full, out_full)),
        }
