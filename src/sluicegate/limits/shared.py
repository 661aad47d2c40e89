"""A limiter whose buckets live in Redis, shared by every process on one key (`shared_limits="redis://..."`).

Admission is one round trip: a Lua script checks and reserves requests, input, output and combined tokens
atomically on Redis's clock and answers how long to wait before sending (`_redis_lua.RESERVE`). Settling,
what the headers say and a 429's pause are sent in the background, pipelined, so `Permit.settle` stays
synchronous and cheap. A heartbeat renews this process's lease (a killed process's reservations come back when
it lapses) and brings back what the pool knows: learnt limits, the pause, latency and every process's demand,
from which this process takes its share of the pool's Little's-law concurrency.

Redis unreachable at `open()`: `SharedLimitsUnavailableError` (a ConfigError). Lost later: nothing is admitted
(never a silent fall back to unshared sending), the heartbeat reconnects with capped exponential backoff,
statistics say `shared_limits_lost`, and the outbox is sent once Redis answers again. Only with `fallback`
(`--shared-limits-fallback`) does this process run on 1/N of the limits locally meanwhile (`_fallback.py`).
The link to Redis (connecting, outbox, heartbeat, loss) is in `_shared_link.py`, the reactions to responses in
`_shared_signals.py`, the permit in `_shared_permit.py`.
"""

from __future__ import annotations

import asyncio
import math
import random
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

import anyio
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .._clock import Clock, SystemClock, wait_event
from .._exceptions import ConfigError
from .._stats import Binding, LimiterStatistics
from . import _redis_lua as lua
from ._fifo import FifoTurns
from ._oversize import refuse_oversize
from ._pool import PoolView, redacted
from ._shared_link import DEFAULT_WINDOW
from ._shared_permit import SharedPermit
from ._shared_signals import _BINDINGS, _DIMS, SharedSignals
from .limiter import Limiter, Limits
from .pace import PaceSearch
from .protocol import AdmissionPermit

__all__ = ["SharedLimiter", "SharedPermit"]

_DEFAULT_CAP = 512
_UNKNOWN_OUTPUT_SHARE = 0.25  # produced accounting: one request's unknown output holds at most this much
# A smooth bucket lets this much of its rate through at once (and RESERVE keeps it at two requests at least): as
# the in-process pace (`pace.py`), since a server enforcing short intervals refuses the burst a second would be.
_SMOOTH_SECONDS = 0.05
_EPOCHS_KEPT = 4096  # recent admissions whose pace epoch a refusal may ask for


class SharedLimiter(SharedSignals):
    """The pool named `name` on the Redis at `url`; `async with`, or `open()` before use and `aclose()` after.

    `limits` are ceilings the headers may lower; `minute` is the refill window in real seconds (only for
    emulators in compressed time); `lease` bounds how long a killed process's reservations stay taken.
    `output_accounting` is the server's ("reserved": a `max_tokens` above the output limit is refused at once).
    `smooth=True` paces every bucket at its rate from the start; otherwise, as the in-process limiter, a bucket
    holds the server's whole window, starts at what the headers say is left and is spent through a shared
    slow-start ramp, until a short-interval 429 makes it smooth; a smooth bucket lets `burst` seconds of its
    pace through at once, and its pace is searched upwards and back as the in-process one's (`pace.py`).
    `fallback`: while Redis is unreachable, admit locally on 1/N of the limits instead of waiting; True takes N
    from the pool's processes at the last heartbeat, an int is N itself (needed when Redis is down at start).
    """

    def __init__(
        self,
        url: str,
        *,
        name: str,
        limits: Limits | None = None,
        clock: Clock | None = None,
        max_concurrency: int | None = None,
        minute: float | None = None,
        burst: float = _SMOOTH_SECONDS,
        rng: random.Random | None = None,
        lease: float = 5.0,
        output_accounting: Literal["produced", "reserved"] = "reserved",
        fallback: bool | int = False,
        smooth: bool = False,
    ) -> None:
        if (minute is not None and minute <= 0) or burst <= 0 or lease <= 0:
            raise ConfigError("minute, burst and lease must be positive")
        if fallback is not True and fallback is not False and fallback < 1:
            raise ConfigError(f"the shared-limits fallback divisor must be at least 1, got {fallback}")
        if max_concurrency is not None and max_concurrency < 1:
            raise ConfigError("max_concurrency must be at least 1")
        self._url = url
        self._prefix = f"sluicegate:{{{name}}}"  # the hash tag keeps the pool's keys in one Redis Cluster slot
        self._keys = lua.pool_keys(self._prefix)
        self._given = limits or Limits()
        self._clock = clock or SystemClock()
        self._cap = max_concurrency or _DEFAULT_CAP
        self._minute = minute  # overrides the windows learnt from the headers
        self._burst = burst
        self._rng = rng or random.Random()
        self._lease = lease
        self._pid = uuid.uuid4().hex[:16]
        self._seq = 0
        self._redis: aioredis.Redis | None = None
        self._scripts: dict[str, Any] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._pool = PoolView()
        self._reported = 0.0
        self._seen = False
        self._in_flight = 0
        self._queue = FifoTurns()
        self._changed = anyio.Event()
        self._binding: Binding | None = None
        self._cooldown_until = -math.inf
        self._outbox: deque[tuple[str, list[Any]]] = deque()
        self._outbox_ready = anyio.Event()
        self._last_observe: list[Any] | None = None
        self._lost = False
        self.reconnects = 0
        self._reserved = output_accounting == "reserved"
        self._accounting = output_accounting
        self._fallback = fallback
        self._seen_limits: list[float | None] = [None] * len(_DIMS)  # per window, from this process's headers
        self._local: Limiter | None = None  # the fallback's limiter, while Redis is lost
        self._smooth = smooth
        self._smoothed: set[int] = set()  # dimensions this process made smooth (the pool's view comes later)
        self._smooth_since = -math.inf
        self._first_admitted: float | None = None
        self._searches = [PaceSearch() for _ in _DIMS]  # the search of each smooth bucket's pace (`pace.py`)
        self._held = [False] * len(_DIMS)  # the pool's pace made one of our requests wait since the last response
        self._units = [0.0] * len(_DIMS)  # the largest request admitted, per dimension
        self._epoch = 0  # the pool's pace epoch, as far as this process has heard (`_redis_lua.PACE`)
        self._stepped = -1  # the latest epoch this process stepped back from
        self._epochs: deque[tuple[float, int]] = deque(maxlen=_EPOCHS_KEPT)  # (admitted at, epoch reserved in)

    def __repr__(self) -> str:
        return f"SharedLimiter({redacted(self._url)!r})"

    async def __aenter__(self) -> SharedLimiter:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- admission -----------------------------------------------------------------------------------------

    async def acquire(
        self, input_tokens: int, output_tokens: int, *, estimate: Callable[[], int] | None = None
    ) -> AdmissionPermit:
        """Wait for a slot of this process's share, reserve in the pool, and wait the time the pool says.

        `estimate`, when given, is asked for the input tokens again at each reservation, so the pool is charged
        the estimator's view when this request reaches the head, not when it queued. Raises InputError at once
        for a request the server would refuse forever (larger than a bucket).
        """
        limits = self._known_limits()
        refuse_oversize(
            input_tokens,
            output_tokens,
            input_limit=limits[1],
            output_limit=limits[2],
            tokens_limit=limits[3],
            reserved=self._reserved,
        )
        if not self._reserved and limits[2] is not None:
            # As the in-process limiter: the server counts output as it is produced, so an unknown (or larger
            # than the bucket) length must not hold admission; reserve at most a quarter of the window's limit.
            output_tokens = max(1, min(output_tokens, math.ceil(limits[2] * _UNKNOWN_OUTPUT_SHARE)))
        async with self._queue.turn():
            return await self._admit(input_tokens, output_tokens, estimate)

    def _known_limits(self) -> list[float | None]:
        """Per window and dimension, the strictest of the given, this process's learnt and the pool's limits."""
        return [
            min((v for v in values if v is not None), default=None)
            for values in zip(self._limits_given(), self._seen_limits, self._pool.limits, strict=True)
        ]

    async def _admit(
        self, input_tokens: int, output_tokens: int, estimate: Callable[[], int] | None
    ) -> AdmissionPermit:
        while True:
            changed = self._changed
            now = self._clock.now()
            if estimate is not None:
                input_tokens = estimate()
            if self._lost and self._local is not None:
                return await self._local.acquire(input_tokens, output_tokens, estimate=estimate)
            if self._lost:
                # The heartbeat reconnects (with backoff) and wakes us; nothing is sent unshared meanwhile.
                self._binding = "shared_limits_lost"
                await changed.wait()
                continue
            if now < self._cooldown_until:
                self._binding = "cooldown"
                await wait_event(self._clock, changed, self._cooldown_until - now)
                continue
            if self._in_flight >= self.concurrency_limit():
                self._binding = "concurrency"
                await changed.wait()
                continue
            self._seq += 1
            rid = f"{self._seq}"
            try:
                reply = await self._scripts["RESERVE"](
                    keys=self._keys, args=[self._pid, rid, input_tokens, output_tokens, self._lease]
                )
            except (RedisError, OSError):
                self._set_lost(True)
                continue
            self._set_lost(False)
            admitted, wait, binding = int(reply[0]), float(reply[1]), reply[2]
            # The epoch this request is reserved in is the reply's, whatever a heartbeat said since.
            epoch = int(reply[4]) if len(reply) > 4 else self._epoch
            self._epoch = max(self._epoch, epoch)
            if not admitted:
                self._cooldown_until = max(self._cooldown_until, self._clock.now() + wait)
                continue
            self._in_flight += 1
            permit = SharedPermit(self, rid, input_tokens, output_tokens, now)
            self._note_admission(input_tokens, output_tokens, wait, binding)
            try:
                if wait > 0:
                    self._binding = _BINDINGS.get(binding.decode() if isinstance(binding, bytes) else binding)
                    await self._clock.sleep(wait)
                # A pause learnt while this one waited holds it too.
                while (left := self._cooldown_until - self._clock.now()) > 0:
                    self._binding = "cooldown"
                    await self._clock.sleep(left)
            except BaseException:
                permit.release()  # cancelled while waiting: nothing was sent
                raise
            self._binding = None
            permit.admitted_at = self._clock.now()
            self._epochs.append((permit.admitted_at, epoch))
            if self._first_admitted is None:
                self._first_admitted = permit.admitted_at
            return permit

    def _note_admission(self, input_tokens: int, output_tokens: int, wait: float, binding: str | bytes) -> None:
        """What the pace search needs of an admission: the largest request, and whether the pace held it."""
        for k, amount in enumerate((1, input_tokens, output_tokens, input_tokens + output_tokens)):
            self._units[k] = max(self._units[k], float(amount))
        code = binding.decode() if isinstance(binding, bytes) else binding
        if wait > 0 and code in _BINDINGS:
            k = _DIMS.index(_BINDINGS[code])
            self._held[k] = self._held[k] or self._paced(k)

    def _finish(self, permit: SharedPermit, mode: str, used_in: int, used_out: int) -> None:
        latency = self._clock.now() - permit.admitted_at
        self._send("SETTLE", [self._pid, permit.rid, mode, used_in, used_out, f"{latency:.6f}"])
        self._in_flight -= 1
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def _window(self, k: int) -> float:
        """Seconds per window of dimension k: the override, else the pool's learnt window, else a minute."""
        limit, rate = self._pool.limits[k], self._pool.rates[k]
        if self._minute is None and limit is not None and rate:
            return limit / rate
        return self._minute or DEFAULT_WINDOW

    # -- sizing and statistics -----------------------------------------------------------------------------

    def concurrency_limit(self) -> int:
        """This process's share of the pool's concurrency; one probe until a response has been seen."""
        if self._local is not None:
            return self._local.concurrency_limit()
        if not (self._seen or self._pool.seen):
            return 1
        mine = self._in_flight + len(self._queue)
        return min(self._cap, self._pool.share(mine, self._reported))

    def ceiling(self) -> float | None:
        """Requests per second the pool's limits allow (None when no limit is known yet)."""
        if self._local is not None:
            return self._local.ceiling()
        return self._pool.ceiling()

    @property
    def local_fallback(self) -> bool:
        """True while Redis is lost and the local fallback admits on 1/N of the limits."""
        return self._local is not None

    def statistics(self) -> LimiterStatistics:
        if self._local is not None:
            return self._local.statistics()
        # Per real minute; rounded, since the rate went through Redis as limit / window in decimal text.
        limits = [None if rate is None else round(rate * 60.0, 6) for rate in self._pool.rates]
        return LimiterStatistics(
            in_flight=self._in_flight,
            concurrency_limit=self.concurrency_limit(),
            waiting=len(self._queue),
            requests_per_minute=limits[0],
            input_tokens_per_minute=limits[1],
            output_tokens_per_minute=limits[2],
            tokens_per_minute=limits[3],
            binding="shared_limits_lost" if self._lost else (self._binding if self._queue else None),
            cooldown_remaining=max(0.0, self._cooldown_until - self._clock.now()),
            latency_estimate=self._pool.latency,
        )
