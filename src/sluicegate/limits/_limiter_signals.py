"""What the server tells the in-process limiter: rate-limit headers, 429s, overload and the first response.

A base of `Limiter` (`limiter.py`), split out so each module stays readable; it owns no state of its own. A 429
while the headers said capacity remained is a short-interval limit: from then on that bucket is paced smoothly,
starting at half the rate that was refused. A 429 from a bucket the headers say is empty syncs that bucket down;
the shared pause (`cool_down`) is left for 429s that the headers do not explain.
"""

from __future__ import annotations

import random

from .._clock import Clock
from .._models import BucketView, RateLimitSnapshot
from .._stats import Binding
from .adaptive import Adaptive
from .counting import CountingMoment
from .gate import Gate
from .ramp import Ramp

_GATE_WORDS: dict[str, tuple[Binding, ...]] = {
    # What a 429's message names (Anthropic: "of 50 requests per minute"; OpenAI: "on tokens per min").
    "input tokens": ("input_tokens",),
    "output tokens": ("output_tokens",),
    "requests": ("requests",),
    "tokens": ("tokens", "input_tokens", "output_tokens"),
}


class ServerSignals:
    """The `Limiter`'s reactions to responses; the attributes are set by its `__init__`."""

    _clock: Clock
    _rng: random.Random
    _smooth: bool
    _reserved: bool
    _gates: dict[Binding, Gate]
    _ramp: Ramp
    _adaptive: Adaptive
    _seen_response: bool
    _cooldown_until: float
    _smooth_since: float
    _counting: CountingMoment

    def _notify(self) -> None:
        raise NotImplementedError

    def observe(self, snapshot: RateLimitSnapshot, now: float | None = None, *, since: float | None = None) -> None:
        """Learn limits and windows from a response's rate-limit headers, and hold what the server says is left.

        Call it as soon as the headers arrive (for a stream, at its first byte), not when the answer ends.
        `since` is when the answered request was admitted (`Permit.admitted_at`): with it, a bucket we model
        as emptier than the server says is raised to match (what we took since then aside).
        """
        now = self._clock.now() if now is None else now
        self._first_response(now, ramp=True)
        requests = snapshot.requests
        if since is not None and requests is not None and requests.limit > 0:
            gate = self._gates["requests"]
            self._counting.observe(requests, since, now, windows=gate.window_range(), taken_by=gate.taken_by)
        at_end = self._counting.at_end
        for name, view in self._views(snapshot):
            gate = self._gates[name]
            limit = float(view.limit) if gate.given is None else min(gate.given, float(view.limit))
            # Produced output tokens are charged by the server while they are generated and by us at the end,
            # so our consumption and its `remaining` disagree in flight: no flow evidence from that bucket.
            exact = name == "requests" or (name == "output_tokens" and self._reserved)
            flow = name != "output_tokens" or self._reserved
            gate.observe(view, limit, now, flow=flow, since=since, credit=exact, counted_at_end=at_end)
        self._notify()

    @staticmethod
    def _views(snapshot: RateLimitSnapshot) -> list[tuple[Binding, BucketView]]:
        views: list[tuple[Binding, BucketView | None]] = [
            ("requests", snapshot.requests),
            ("input_tokens", snapshot.input_tokens),
            ("output_tokens", snapshot.output_tokens),
        ]
        # Anthropic's combined "tokens" is input + output when both are reported: enforcing it adds nothing.
        if snapshot.input_tokens is None and snapshot.output_tokens is None:
            views.append(("tokens", snapshot.tokens))
        return [(name, view) for name, view in views if view is not None and view.limit > 0]

    def rate_limited(
        self,
        snapshot: RateLimitSnapshot | None,
        input_tokens: int,
        output_tokens: int,
        message: str = "",
        *,
        admitted_at: float | None = None,
    ) -> bool:
        """A 429 for a request of this size, admitted at `admitted_at`. True when the buckets now handle it and
        no shared pause is needed:

        - a bucket the headers say is empty: our mirror was ahead of the server's, and is synced down to it
          (only requests that need that bucket wait for its refill);
        - a short-interval limit (the headers said every bucket had room): the named bucket (or all) paces
          smoothly from now on, at half the rate just refused, or a little slower than it did.

        False (no rate-limit headers, or paced at the learnt rate and still refused): for `cool_down`."""
        views = self._views(snapshot) if snapshot is not None else []
        if not views:
            return False
        amounts: dict[Binding, float] = {
            "requests": 1.0,
            "input_tokens": float(input_tokens),
            "output_tokens": float(output_tokens),
            "tokens": float(input_tokens + output_tokens),
        }
        now = self._clock.now()
        empty = [(name, view) for name, view in views if view.remaining - view.remaining_error + 1.0 < amounts[name]]
        if empty:
            # The bucket really was empty: our model was ahead of the server. Hold what the server says is left;
            # admission then waits for that bucket's refill, and only requests that need it wait, not the run.
            for name, view in empty:
                gate = self._gates[name]
                if gate.limit is None:
                    return False
                gate.sync_down(view, gate.limit, now, since=admitted_at)
            self._notify()
            return True
        # A refusal's reset headers bound the window as well as any answer's: the pace below starts no faster than
        # the fastest refill they allow, so the tighter that bound, the fewer steps back (each one a 429).
        for name, view in views:
            gate = self._gates[name]
            if gate.limit is not None and gate.observe_reset(view, now, admitted_at):
                gate.refresh_rate(now)
        lowered = message.lower()
        named = [names for words, names in _GATE_WORDS.items() if words in lowered]
        chosen = named[0] if named else tuple(self._gates)
        gates = [self._gates[name] for name in chosen if self._gates[name].limit is not None]
        fresh = [gate for gate in gates if not gate.smooth]
        if fresh:
            for gate in fresh:
                gate.go_smooth(now, admitted_at, amounts[gate.name])
            self._ramp.stop()
            self._smooth_since = now
        elif admitted_at is not None and admitted_at <= self._smooth_since:
            # Sent before the last change of pace: already dealt with. One sent after it is the new pace's: that
            # pace starts empty (`pace.py`), so its first request found the server's bucket refilled for one at the
            # new pace, unless the pace is faster than the server's refill (the very thing a refusal says).
            return True
        else:
            slowed = [gate.slow_down(now, amounts[gate.name]) for gate in gates]  # every named gate, not just the first
            if not any(slowed):
                return False  # paced at the learnt rate and still refused: pause as the server asks
            self._smooth_since = now  # the others already in flight were sent at the pace just left
        self._notify()
        return True

    def cool_down(self, seconds: float) -> None:
        """A 429: nobody is admitted for `seconds`, then waiters resume spread over a short jitter window."""
        now = self._clock.now()
        jitter = self._rng.uniform(0.0, min(1.0, 0.1 * seconds))
        self._cooldown_until = max(self._cooldown_until, now + seconds + jitter)
        self._adaptive.decrease()
        self._notify()

    def overloaded(self) -> None:
        """A 529/503 or similar: multiplicative decrease of the adaptive concurrency."""
        self._adaptive.decrease()
        self._notify()

    def saw_response(self) -> None:
        """Any response (even one without rate-limit headers) ends the single-request probe."""
        if not self._seen_response:
            self._first_response(self._clock.now())
            self._notify()

    def _first_response(self, now: float, *, ramp: bool = False) -> None:
        if self._seen_response:
            return
        self._seen_response = True
        # Only headers say there is an allowance to spend; without them AIMD sizes the concurrency instead.
        if ramp and not self._smooth:
            self._ramp.begin(now)

    @property
    def probing(self) -> bool:
        """True until the first response: one request goes out alone (a bad key costs one request)."""
        return not self._seen_response

    @property
    def cooldown_until(self) -> float:
        return self._cooldown_until
