"""The limiter's link to Redis: connecting, leaving, the pipelined outbox, the heartbeat and losing Redis.

A base of `SharedLimiter` (`shared.py`), split out so each module stays readable; it owns no state of its own,
only the methods that talk to Redis in the background. While Redis is lost, `_start_fallback` builds the local
limiter on 1/N of the limits (`_fallback.py`).
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from typing import Any, Literal

import anyio
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .._clock import Clock
from .._exceptions import SharedLimitsUnavailableError
from . import _redis_lua as lua
from ._fallback import local_limiter
from ._fifo import FifoTurns
from ._pool import PoolView, redacted
from .limiter import Limiter

DEFAULT_WINDOW = 60.0  # until the headers say otherwise, limits are per minute
_OUTBOX_BATCH = 256
_BACKOFF = (0.05, 2.0)  # first and largest reconnect delay, seconds


class PoolLink:
    """Connection, outbox and heartbeat of a `SharedLimiter`; the attributes are set by its `__init__`."""

    _url: str
    _keys: list[str]
    _clock: Clock
    _cap: int
    _minute: float | None
    _rng: random.Random
    _lease: float
    _pid: str
    _redis: aioredis.Redis | None
    _scripts: dict[str, Any]
    _tasks: list[asyncio.Task[None]]
    _closing: bool
    _pool: PoolView
    _reported: float
    _seen: bool
    _in_flight: int
    _queue: FifoTurns
    _cooldown_until: float
    _outbox: deque[tuple[str, list[Any]]]
    _outbox_ready: anyio.Event
    _last_observe: list[Any] | None
    _lost: bool
    reconnects: int
    _accounting: Literal["produced", "reserved"]
    _fallback: bool | int
    _local: Limiter | None

    def concurrency_limit(self) -> int:
        raise NotImplementedError

    def _notify(self) -> None:
        raise NotImplementedError

    def _limits_given(self) -> tuple[float | None, ...]:
        raise NotImplementedError

    def _observe_args(self, views: list[Any] | None, rtt: float | None = None, stale: float = 0.0) -> list[Any]:
        raise NotImplementedError

    def _adopt_paces(self) -> None:
        raise NotImplementedError

    # -- lifecycle -----------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, check Redis answers, join the pool and start the heartbeat and the outbox sender."""
        client = aioredis.Redis.from_url(self._url, socket_connect_timeout=2.0, socket_timeout=2.0)
        self._redis = client
        self._scripts = {
            name: client.register_script(getattr(lua, name))
            for name in ("RESERVE", "SETTLE", "OBSERVE", "PAUSE", "HEARTBEAT", "LEAVE", "SMOOTH", "PACE")
        }
        if any(v is not None for v in self._limits_given()):
            self._last_observe = self._observe_args(None)
        try:
            await client.ping()
            if self._last_observe is not None:  # in force before the first admission
                await self._scripts["OBSERVE"](keys=self._keys, args=self._last_observe)
            await self._heartbeat()
        except (RedisError, OSError) as exc:
            if self._fallback is True or self._fallback is False:
                await client.aclose()
                hint = (
                    " With --shared-limits-fallback alone the number of processes is unknown at start: give it, "
                    "as --shared-limits-fallback N."
                    if self._fallback
                    else ""
                )
                raise SharedLimitsUnavailableError(
                    f"cannot reach the shared-limits Redis at {redacted(self._url)}: {exc}. "
                    f"Start it, or run without --shared-limits (each process then has its own limiter).{hint}"
                ) from exc
            self._set_lost(True)  # the fallback's divisor is known: run locally until Redis answers
        # Plain asyncio tasks (redis.asyncio is asyncio-only anyway), not a task group: the limiter may be opened
        # in one task and closed in another, as an SDK transport opened by its first request is.
        loop = asyncio.get_running_loop()
        self._closing = False
        self._tasks = [loop.create_task(self._heartbeat_loop()), loop.create_task(self._outbox_loop())]

    async def aclose(self) -> None:
        """Send what is queued (briefly), leave the pool and close the connection."""
        # The flag as well as the cancel: redis-py may absorb a cancellation that lands inside one of its calls.
        self._closing = True
        self._outbox_ready.set()
        for task in self._tasks:
            task.cancel()
        # Real seconds of grace for Redis I/O at shutdown, on the loop's time: nothing is paced here.
        with anyio.CancelScope(shield=True), anyio.move_on_after(2.0):  # noqa: TID251
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        client = self._redis
        if client is None:
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(2.0):  # noqa: TID251
            try:
                await self._flush()
                await self._scripts["LEAVE"](keys=self._keys, args=[self._pid])
            except (RedisError, OSError):
                pass  # the lease lapses on its own
        await client.aclose()
        self._redis = None

    def _send(self, script: str, args: list[Any]) -> None:
        self._outbox.append((script, args))
        self._outbox_ready.set()

    async def _flush(self) -> None:
        """Send queued calls in one pipeline per batch; on failure they stay queued, in order."""
        assert self._redis is not None
        while self._outbox:
            batch = [self._outbox[i] for i in range(min(_OUTBOX_BATCH, len(self._outbox)))]
            async with self._redis.pipeline(transaction=False) as pipe:
                for script, args in batch:
                    await self._scripts[script](keys=self._keys, args=args, client=pipe)
                await pipe.execute()
            for _ in batch:
                self._outbox.popleft()

    async def _outbox_loop(self) -> None:
        while not self._closing:
            await self._outbox_ready.wait()
            self._outbox_ready = anyio.Event()
            if self._lost:
                continue  # the heartbeat flushes once Redis answers again
            try:
                await self._flush()
            except (RedisError, OSError):
                self._set_lost(True)

    async def _heartbeat(self) -> None:
        demand = float(self._in_flight + len(self._queue))
        if self._queue:  # backlogged: ask for more than it holds, so its share can grow
            demand = max(demand, float(self.concurrency_limit() + 1))
        reply = await self._scripts["HEARTBEAT"](keys=self._keys, args=[self._pid, self._lease, demand])
        self._pool = PoolView.parse(reply)
        self._adopt_paces()
        self._reported = demand
        if self._pool.pause > 0:
            self._cooldown_until = max(self._cooldown_until, self._clock.now() + self._pool.pause)
        self._notify()

    async def _heartbeat_loop(self) -> None:
        delay = _BACKOFF[0]
        while not self._closing:
            try:
                await self._heartbeat()
                if self._lost:
                    if self._last_observe is not None:  # a restarted Redis forgot the limits
                        self._outbox.appendleft(("OBSERVE", self._last_observe))
                    await self._flush()
                    self._set_lost(False)
                delay = _BACKOFF[0]
                await self._clock.sleep(self._lease / 20)
            except (RedisError, OSError):
                self._set_lost(True)
                await self._clock.sleep(delay)
                delay = min(_BACKOFF[1], delay * 2)

    def _set_lost(self, lost: bool) -> None:
        if lost and not self._lost:
            self.reconnects += 1
        if lost != self._lost:
            self._lost = lost
            self._local = self._start_fallback() if lost else None
            self._notify()

    def _divisor(self) -> int:
        """N of the fallback: the user's, else the processes in the pool at the last heartbeat."""
        if self._fallback is True or self._fallback is False:
            return self._pool.live
        return self._fallback

    def _start_fallback(self) -> Limiter | None:
        if self._fallback is False:
            return None
        window = self._minute or DEFAULT_WINDOW
        # The pool's learnt rates (per `window`, so the local gates start at the right pace), else the given.
        per_window = tuple(
            given if rate is None else rate * window
            for rate, given in zip(self._pool.rates, self._limits_given(), strict=True)
        )
        local = local_limiter(
            self._divisor(),
            per_window,
            clock=self._clock,
            max_concurrency=self._cap,
            minute=self._minute,
            output_accounting=self._accounting,
            rng=self._rng,
        )
        if self._seen or self._pool.seen:
            local.saw_response()  # the pool already knows the key works: no single-request probe again
        return local
