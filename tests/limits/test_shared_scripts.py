"""The shared pool's Lua scripts on a real redis-server: atomic reserve, wait hints, settle, expiry, pause."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis

from local_servers import free_port, start_redis
from sluicegate.limits import _redis_lua as lua

pytestmark = pytest.mark.anyio


class Pool:
    """Calls the scripts directly, as processes `pid` would, and reads the pool's state back."""

    def __init__(self, client: aioredis.Redis, name: str) -> None:
        self.client = client
        self.prefix = f"sluicegate:{{{name}}}"

    async def call(self, script: str, *args: Any) -> Any:
        keys = lua.pool_keys(self.prefix)
        return await self.client.eval(getattr(lua, script), len(keys), *keys, *args)

    async def limits(self, r: float = 0, i: float = 0, o: float = 0, t: float = 0) -> None:
        """Limits per hour, buckets holding a minute: the same capacities as per-minute limits with one-second
        buckets, refilled 60 times slower, so a loaded machine's milliseconds between calls do not show."""
        window, burst = 3600.0, 60.0
        args: list[Any] = [burst, "1", ""]  # paced smoothly from the start: buckets of `burst` seconds
        for limit in (r, i, o, t):
            args += [limit or "", window, "", 0, "", "", ""]
        await self.call("OBSERVE", *args)

    async def reserve(self, pid: str, rid: str, inp: int, out: int, lease: float = 30.0) -> tuple[int, float, str]:
        ok, wait, binding, _, _ = await self.call("RESERVE", pid, rid, inp, out, lease)
        return int(ok), float(wait), binding.decode()

    async def level(self, d: str) -> float:
        value = await self.client.hget(f"{self.prefix}:state", f"lvl:{d}")
        assert value is not None
        return float(value)


@pytest.fixture
async def pool(redis_url: str) -> AsyncIterator[Pool]:
    """A fresh pool (unique name) on the session's redis-server."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield Pool(client, uuid.uuid4().hex)
    finally:
        await client.aclose()


async def test_reserve_takes_every_dimension_and_names_the_binding_one(pool: Pool) -> None:
    """One call takes requests, input and output tokens together; the wait is set by the scarcest bucket."""
    # Buckets of 10 requests, 1,000 input tokens and 100 output tokens, refilled in a minute.
    await pool.limits(r=600, i=60_000, o=6_000)
    assert await pool.reserve("p1", "1", 100, 50) == (1, 0.0, "")
    assert await pool.level("r") == pytest.approx(9, abs=0.01)
    assert await pool.level("i") == pytest.approx(900, abs=1)
    assert await pool.level("o") == pytest.approx(50, abs=0.1)
    ok, wait, binding = await pool.reserve("p1", "2", 100, 100)
    # 50 output tokens short at 100 a minute: admitted now, to be sent in 30 s (the other buckets had room).
    assert (ok, binding) == (1, "o")
    assert wait == pytest.approx(30, abs=0.5)  # less the time between the calls
    assert await pool.level("o") == pytest.approx(-50, abs=0.1)
    assert await pool.level("r") == pytest.approx(8, abs=0.01)


async def test_concurrent_reserves_are_serialised_first_come_first_served(pool: Pool) -> None:
    """Fifty reserves racing from different processes each wait exactly one request's refill longer than the last."""
    await pool.limits(r=60)  # one request a minute, held one at a time; a bucket is at least two requests
    waits: list[float] = []

    async def one(i: int) -> None:
        ok, wait, _ = await pool.reserve(f"p{i % 5}", str(i), 1, 1)
        assert ok == 1
        waits.append(wait)

    async with anyio.create_task_group() as tg:
        for i in range(50):
            tg.start_soon(one, i)
    waits.sort()
    # Nothing was lost or taken twice: after the one request the bucket held, each waits a minute more.
    assert waits[0] == 0.0
    for k, wait in enumerate(waits[1:], start=1):
        assert wait == pytest.approx(60 * k, abs=1)


async def test_settle_charges_usage_and_refunds_the_rest(pool: Pool) -> None:
    """'ok' charges the real input and output; 'refund' (a 429) gives nothing back to a smooth bucket: the refused
    request's place in its spacing is kept, as the in-process pace keeps it."""
    await pool.limits(r=600, i=60_000, o=60_000)
    await pool.reserve("p1", "a", 500, 900)
    await pool.reserve("p1", "b", 500, 900)
    assert await pool.call("SETTLE", "p1", "a", "ok", 400, 100, 0.5) == 1
    assert await pool.level("i") == pytest.approx(1000 - 400 - 500, abs=0.5)
    assert await pool.level("o") == pytest.approx(1000 - 100 - 900, abs=0.5)
    assert await pool.call("SETTLE", "p1", "b", "refund", 0, 0, 0) == 1
    assert await pool.level("r") == pytest.approx(8, abs=0.01)
    assert await pool.level("o") == pytest.approx(1000 - 900 - 900 + 800, abs=0.5)  # a's unused output only
    assert await pool.call("SETTLE", "p1", "b", "ok", 1, 1, 0) == 0  # settled once only


async def test_a_refused_request_is_given_back_to_a_whole_window_bucket(pool: Pool) -> None:
    """Not smooth: a 429's 'refund' returns the request to the bucket (the server never counted it)."""
    await _observe(pool, "0", "", 600)
    await pool.reserve("p1", "a", 1, 1)
    assert await pool.level("r") == pytest.approx(599, abs=0.01)
    assert await pool.call("SETTLE", "p1", "a", "refund", 0, 0, 0) == 1
    assert await pool.level("r") == pytest.approx(600, abs=0.01)


async def test_a_dead_process_reservation_comes_back_when_its_lease_lapses(pool: Pool) -> None:
    """A process that never settles (killed) gets its reserved output tokens refunded once its lease lapses."""
    await pool.limits(o=6_000)  # a bucket of 100 output tokens, refilled in a minute
    await pool.reserve("dead", "1", 0, 50, lease=0.2)
    assert await pool.level("o") == pytest.approx(50, abs=0.1)
    await anyio.sleep(0.25)
    live, *_ = await pool.call("HEARTBEAT", "alive", 5.0, 0)
    assert live == b"1"  # the dead process left the pool
    assert not await pool.client.hkeys(f"{pool.prefix}:res")
    assert await pool.level("o") == pytest.approx(100, abs=0.01)  # full again: refunded, not just refilled


async def test_a_pause_stops_every_process_until_it_ends(pool: Pool) -> None:
    """A 429 seen by one process: every reserve in the pool is refused with the time left, and admitted after."""
    await pool.limits(r=600)
    left = float(await pool.call("PAUSE", 1.5, 0))
    assert left == pytest.approx(1.5, abs=0.01)
    ok, wait, binding = await pool.reserve("other", "1", 1, 1)
    assert (ok, binding) == (0, "cooldown")
    assert 0.5 < wait <= 1.5
    await anyio.sleep(wait)
    assert (await pool.reserve("other", "2", 1, 1))[0] == 1


async def test_remaining_pulls_the_level_down_never_up(pool: Pool) -> None:
    """The server's `remaining` lowers the pool's level when lower, and is ignored when higher."""
    await pool.limits(r=600)
    await pool.call("OBSERVE", 60.0, "1", "", 600, 3600, 3, 1, "", "", "", *([""] * 21))
    assert await pool.level("r") == pytest.approx(3, abs=0.05)
    await pool.call("OBSERVE", 60.0, "1", "", 600, 3600, 500, 1, "", "", "", *([""] * 21))
    assert await pool.level("r") == pytest.approx(3, abs=0.1)


async def test_every_script_touches_only_its_declared_keys_in_one_cluster_slot(tmp_path: Path) -> None:
    """On a Redis Cluster node (which refuses keys of different slots), every script runs, and leaves no key
    besides the four it declares."""
    port = free_port()
    # The cluster bus port is port + 10000 unless given: past 55535 that does not exist.
    extra = ("--cluster-enabled", "yes", "--cluster-port", str(free_port()), "--dir", str(tmp_path))
    server = start_redis(port, *extra)
    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0")
    try:
        await client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        for _ in range(200):  # the node takes a moment to call its slots served
            if b"cluster_state:ok" in await client.execute_command("CLUSTER", "INFO"):
                break
            await anyio.sleep(0.05)
        else:
            pytest.fail("the one-node cluster never became ready")
        pool = Pool(client, uuid.uuid4().hex)
        await pool.limits(r=600, i=60_000, o=60_000, t=120_000)
        await pool.reserve("p1", "1", 10, 10)
        await pool.reserve("dead", "1", 10, 10, lease=0.01)
        await pool.reserve("p2", "1", 10, 10)
        assert await pool.call("SETTLE", "p1", "1", "ok", 5, 5, 0.1) == 1
        await pool.call("PAUSE", 0, 0)
        await anyio.sleep(0.02)
        await pool.call("HEARTBEAT", "p1", 5.0, 1)  # reaps "dead"
        assert await pool.call("LEAVE", "p2") == 1
        keys = {key if isinstance(key, str) else key.decode() for key in await client.keys("*")}
        assert keys <= set(lua.pool_keys(pool.prefix))
        assert await client.hkeys(f"{pool.prefix}:res") == []  # every reservation settled, reaped or left
    finally:
        await client.aclose()
        server.terminate()
        server.wait(10)


async def _observe(pool: Pool, smooth: str, rtt: str, remaining: float) -> None:
    """Requests only: 600 per 3,600 s window, `remaining` left by the server's count."""
    await pool.call("OBSERVE", 1.0, smooth, rtt, 600, 3600, remaining, 1, "", "", "", *([""] * 21))


async def test_a_bucket_holds_the_whole_window_and_starts_at_what_is_left(pool: Pool) -> None:
    """Not smooth: the bucket's capacity is the window's limit, and the headers' `remaining` is where it starts."""
    await _observe(pool, "0", "", 100)
    state = await pool.client.hgetall(f"{pool.prefix}:state")
    assert float(state[b"cap:r"]) == 600
    assert await pool.level("r") == pytest.approx(100, abs=0.1)
    assert b"ramp" not in state  # no response yet (no round trip): nothing to ramp from


async def test_the_ramp_spaces_admissions_and_doubles_every_round_trip(pool: Pool) -> None:
    """The first response starts the ramp: 4 per round trip (0.25 s), so 1/16 s apart at first, then closer."""
    await _observe(pool, "0", "0.25", 600)
    sends: list[float] = []  # when each may go out, on this machine's clock (Redis's is the same)
    for k in range(12):
        called = time.time()
        sends.append(called + (await pool.reserve("p1", str(k), 1, 1))[1])
    gaps = [b - a for a, b in itertools.pairwise(sends)]
    assert gaps[0] == pytest.approx(1 / 16, abs=0.015)
    assert all(gap > 0.005 for gap in gaps)  # spaced, never a burst
    assert gaps[-1] < gaps[0] * 0.75  # the rate has grown
    assert sends[-1] - sends[0] < 0.8  # 12 requests within a few round trips, not paced at 600 an hour


async def test_smooth_shrinks_the_named_bucket_and_stops_the_ramp(pool: Pool) -> None:
    """A short-interval 429: the bucket becomes one burst of its rate, empty as the server's, and the ramp ends:
    requests go out one interval of the rate apart (6 s at 600 an hour), not at the ramp's spacing."""
    await _observe(pool, "0", "0.25", 600)
    await pool.call("SMOOTH", 60.0, "r")  # a burst of 60 s at 600 an hour: 10 requests
    state = await pool.client.hgetall(f"{pool.prefix}:state")
    assert float(state[b"cap:r"]) == pytest.approx(10)
    assert await pool.level("r") == pytest.approx(0, abs=0.01)
    assert state[b"ramp"] == b"0"
    reply = await pool.call("HEARTBEAT", "p1", 5.0, 0)
    assert [v.decode() for v in reply[16:20]] == ["1", "", "", ""]  # requests smooth, the others not
    assert (await pool.reserve("p1", "1", 1, 1))[1] == pytest.approx(6.0, abs=0.05)
    assert (await pool.reserve("p1", "2", 1, 1))[1] == pytest.approx(12.0, abs=0.05)


async def test_reservations_made_before_a_limit_was_known_come_off_its_start(pool: Pool) -> None:
    """Two probes reserved while no limit was known: the first headers' `remaining` is lowered by both."""
    await pool.reserve("p1", "1", 1, 1)
    await pool.reserve("p2", "1", 1, 1)
    await _observe(pool, "0", "0.1", 590)
    assert await pool.level("r") == pytest.approx(588, abs=0.1)


async def test_the_pool_learns_the_window_from_every_process_s_resets(pool: Pool) -> None:
    """Two responses (from any processes) with whole-second resets narrow one shared interval; the pool paces by
    its longest window."""
    args = ("1.0", "0", "")
    await pool.call("OBSERVE", *args, 600, "", 300, 1, 30, 1.0, 600, *([""] * 21))  # 57.8 to 62.2 s
    await pool.call("OBSERVE", *args, 600, "", 100, 1, 50, 1.0, 600, *([""] * 21))  # 58.7 to 61.3 s
    state = await pool.client.hgetall(f"{pool.prefix}:state")
    assert float(state[b"wlo:r"]) == pytest.approx(600 * 49 / 501)
    assert float(state[b"whi:r"]) == pytest.approx(600 * 51 / 499)
    assert float(state[b"rate:r"]) == pytest.approx(499 / 51)  # 600 per 61.3 s


async def test_the_pool_s_own_consumption_bounds_the_window_by_flow(pool: Pool) -> None:
    """Without a reset header, the refill seen between two responses with the pool's consumption known gives
    the window: 10 taken and `remaining` unchanged after 1 s means 10 refilled, so 600 take 60 s."""
    await pool.call("OBSERVE", "1.0", "0", "", 600, "", 300, 1, "", "", 600, *([""] * 21))
    for k in range(10):
        await pool.reserve("p1", str(k), 1, 1)
    seconds, micros = await pool.client.time()
    await pool.client.hset(f"{pool.prefix}:state", "fat:r", str(seconds + micros / 1e6 - 1.0))  # the anchor 1 s ago
    await pool.call("OBSERVE", "1.0", "0", "", 600, "", 300, 1, "", "", 600, *([""] * 21))
    fhi = float(await pool.client.hget(f"{pool.prefix}:state", "fhi:r") or 0)
    assert fhi == pytest.approx(600 * 1.0 / 8, rel=0.1)  # 10 refilled, less twice the error of 1


async def test_a_bucket_without_evidence_takes_the_window_learnt_for_the_others(pool: Pool) -> None:
    """Output counted as produced stays full (no evidence): it is paced by the requests' learnt window, not a
    default minute ten times too slow."""
    requests = (600, "", 300, 1, 3.0, 0.0, 600)  # half missing, full in 3 s: a window of about 6 s
    output = (8000, "", 8000, 1, 0.0, 0.0, 8000)  # full
    await pool.call("OBSERVE", "1.0", "0", "", *requests, *([""] * 7), *output, *([""] * 7))
    state = await pool.client.hgetall(f"{pool.prefix}:state")
    window = 600 / float(state[b"rate:r"])
    assert window == pytest.approx(6.0, abs=0.05)
    assert 8000 / float(state[b"rate:o"]) == pytest.approx(window)


async def _paced_pool(pool: Pool) -> None:
    """Requests smooth from the start: 600 per 3,600 s (1/6 a second), a burst of 60 s (10 requests)."""
    await pool.call("OBSERVE", 60.0, "1", "", 600, 3600, 600, 1, "", "", "", *([""] * 21))


async def test_a_probe_upwards_is_taken_once_and_only_in_the_epoch_it_was_decided_in(pool: Pool) -> None:
    """Two processes decide the same probe in epoch 0: the pool doubles its pace once; the bucket holds a burst of
    it; admissions and the heartbeat carry the new epoch."""
    await _paced_pool(pool)
    step = ["r", 0, 1 / 3, 1 / 6, "", "0"]
    assert await pool.call("PACE", 60.0, *step) == 1
    assert await pool.call("PACE", 60.0, *step) == 0  # epoch 0 is over
    state = await pool.client.hgetall(f"{pool.prefix}:state")
    assert float(state[b"pace:r"]) == pytest.approx(1 / 3)
    assert float(state[b"cap:r"]) == pytest.approx(20)
    assert float(state[b"rate:r"]) == pytest.approx(1 / 6)  # the learnt rate is kept apart from the pace
    reply = await pool.call("HEARTBEAT", "p1", 5.0, 0)
    pace, good, refused, shortest = (v.decode() for v in reply[20:24])  # requests: pace, good, refused, window
    assert (float(pace), float(good), refused, shortest) == (pytest.approx(1 / 3), pytest.approx(1 / 6), "", "")
    assert reply[36] == b"1"
    assert (await pool.call("RESERVE", "p1", "1", 1, 1, 30.0))[4] == b"1"


async def test_a_refusal_slows_the_pool_once_empties_the_bucket_and_it_refills_at_the_new_pace(pool: Pool) -> None:
    """After a refusal the next request waits one interval of the slower pace (4 s at 1/4 a second, where the
    learnt 1/6 would be 6 s); a refusal of a request admitted before that step (epoch 1) changes nothing."""
    await _paced_pool(pool)
    assert await pool.call("PACE", 60.0, "r", 0, 1 / 3, 1 / 6, "", "0") == 1
    assert await pool.call("PACE", 60.0, "r", 1, 1 / 4, 1 / 6, 1 / 3, "1") == 1
    assert await pool.call("PACE", 60.0, "r", 1, 1 / 6, 1 / 6, 1 / 4, "1") == 0
    assert await pool.level("r") == pytest.approx(0, abs=0.01)
    assert (await pool.reserve("p1", "1", 1, 1))[1] == pytest.approx(4.0, abs=0.05)


async def test_a_refusal_never_speeds_the_pool_up(pool: Pool) -> None:
    """A refusal step whose new pace is not below the pool's is not taken."""
    await _paced_pool(pool)
    assert await pool.call("PACE", 60.0, "r", 0, 1 / 3, 1 / 6, 1 / 2, "1") == 0


async def test_new_headers_keep_the_probed_pace_s_bucket(pool: Pool) -> None:
    """A response's OBSERVE (same limit and window) leaves the bucket sized for the pace, not the learnt rate."""
    await _paced_pool(pool)
    await pool.call("PACE", 60.0, "r", 0, 1 / 3, 1 / 6, "", "0")
    await _paced_pool(pool)
    assert float(await pool.client.hget(f"{pool.prefix}:state", "cap:r") or 0) == pytest.approx(20)


async def test_a_late_smooth_from_a_process_that_had_not_heard_keeps_the_pool_s_pace(pool: Pool) -> None:
    """SMOOTH of a bucket already smooth changes nothing: the pace the pool's processes found stays."""
    await _paced_pool(pool)
    await pool.call("PACE", 60.0, "r", 0, 1 / 3, 1 / 6, "", "0")
    await pool.call("SMOOTH", 60.0, "r")
    state = await pool.client.hgetall(f"{pool.prefix}:state")
    assert float(state[b"pace:r"]) == pytest.approx(1 / 3)
    assert float(state[b"cap:r"]) == pytest.approx(20)
    assert state[b"pepoch"] == b"1"


async def test_no_flow_evidence_while_a_reservation_is_still_to_go_out(pool: Pool) -> None:
    """The pool's consumption counts reservations at once; while one is scheduled in the future, it was not sent
    yet, and the refill between two responses would read too fast: no flow bound from that span."""
    await pool.call("OBSERVE", "1.0", "0", "", 600, "", 300, 1, "", "", 600, *([""] * 21))
    for k in range(10):
        await pool.reserve("p1", str(k), 1, 1)
    seconds, micros = await pool.client.time()
    now = seconds + micros / 1e6
    await pool.client.hset(f"{pool.prefix}:state", mapping={"fat:r": str(now - 1.0), "sched": str(now + 5.0)})
    await pool.call("OBSERVE", "1.0", "0", "", 600, "", 300, 1, "", "", 600, *([""] * 21))
    assert await pool.client.hget(f"{pool.prefix}:state", "fhi:r") is None


async def test_a_step_back_starts_after_the_reservations_made_before_it(pool: Pool) -> None:
    """Refused at 1/3 a second with reservations out to 30 s from now: the slower pace's first request goes out one
    interval (4 s at 1/4) after the last of them, not between them."""
    await _paced_pool(pool)
    await pool.call("PACE", 60.0, "r", 0, 1 / 3, 1 / 6, "", "0")
    seconds, micros = await pool.client.time()
    await pool.client.hset(f"{pool.prefix}:state", "sched", str(seconds + micros / 1e6 + 30.0))
    await pool.call("PACE", 60.0, "r", 1, 1 / 4, 1 / 6, 1 / 3, "1")
    assert (await pool.reserve("p1", "1", 1, 1))[1] == pytest.approx(34.0, abs=0.05)
