"""The shared pool's Lua scripts: reserve, settle, observe, pause and heartbeat, each atomic on Redis's clock.

Layout of one pool, all under the prefix `P = sluicegate:{NAME}`. Every key a script touches is passed in KEYS
(`pool_keys`), and the hash tag `{NAME}` puts all of them in one slot, so the scripts run on Redis Cluster too:

- `P:state` hash, per dimension d in r (requests), i (input tokens), o (output tokens), t (combined tokens):
  `lim:d` (limit per window), `rate:d` (tokens per second), `cap:d` (bucket capacity), `lvl:d` and `at:d`
  (level at time `at`). Also `cool` (a 429's pause ends, server seconds), `lat`, `avg_i`, `avg_o` (smoothed
  latency and usage, for Little's law), `seen` (a response has been observed) and `aimd` (concurrency without
  known limits). As the in-process limiter does, a bucket holds the server's whole window (`cap` = `lim`) and
  starts at what the headers say is left, spent through a slow-start ramp (`ramp`, `rstart`, `rrtt`, `rtat`:
  the admission rate doubles every round trip, spaced as GCRA); `smooth:d` = 1 marks a bucket paced smoothly
  instead (`cap` = one burst of its rate), from the start or since a short-interval 429 (`SMOOTH`). A smooth
  bucket's pace is searched as the in-process one's (`pace.py`): `pace:d` (tokens per second; the bucket
  refills at the faster of it and the learnt `rate:d`), `pgood:d` and `pref:d` (its good and slowest refused
  paces), set by whichever process decides a step (`PACE`).
- `P:procs` sorted set: process id -> lease expiry. `P:demand` hash: process id -> items it has in flight or
  waiting.
- `P:res` hash: "PID:RID" (process id, reservation id) -> "input output" tokens reserved and not yet settled.
  One hash for the whole pool, not one per process: a dead process's key could not be declared in advance.

A reservation is taken at once, into debt if need be, and the reply says how long to wait before sending
(GCRA's virtual scheduling): one round trip per admission, no polling, and first come first served across
processes. A process whose lease lapses (killed, partitioned) is reaped by the next script that runs: its
reserved output tokens beyond the pool's average output are refunded, since the server refunds unused output
of a request that ended; requests and input tokens stay spent, as the server counted them.

Numbers go back to Python as strings: Redis truncates Lua numbers to integers.
"""

from __future__ import annotations

__all__ = ["HEARTBEAT", "LEAVE", "OBSERVE", "PACE", "PAUSE", "RESERVE", "SETTLE", "SMOOTH", "pool_keys"]


def pool_keys(prefix: str) -> list[str]:
    """The KEYS of every script, in order: state, procs, demand, res."""
    return [f"{prefix}:state", f"{prefix}:procs", f"{prefix}:demand", f"{prefix}:res"]


_PRELUDE = """
local S, PROCS, DEMAND, RES = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local DIMS = {'r', 'i', 'o', 't'}

-- The state hash is small: read it once, write through.
local ST = {}
local raw = redis.call('HGETALL', S)
for k = 1, #raw, 2 do ST[raw[k]] = raw[k + 1] end

local function num(key, default)
  local v = ST[key]
  if v then return tonumber(v) end
  return default
end

local function put(...)
  local args = {...}
  for k = 1, #args, 2 do ST[args[k]] = args[k + 1] end
  redis.call('HSET', S, ...)
end

-- Level of dimension d now, or nil when the pool has no limit for it. A smooth bucket refills at its pace
-- when that was probed above the learnt rate.
local function level(d)
  local rate = num('rate:' .. d, 0)
  if rate <= 0 then return nil end
  rate = math.max(rate, num('pace:' .. d, 0))
  local cap = num('cap:' .. d, 0)
  local lvl = num('lvl:' .. d, cap)
  local at = num('at:' .. d, now)
  if now > at then lvl = math.min(cap, lvl + (now - at) * rate) end
  return lvl, cap, rate
end

-- Take (positive) or give back (negative) `amount` of dimension d; a refund never overfills the bucket.
local function charge(d, amount)
  local lvl, cap = level(d)
  if lvl == nil or amount == 0 then return end
  lvl = lvl - amount
  if amount < 0 then lvl = math.min(cap, lvl) end
  put('lvl:' .. d, tostring(lvl), 'at:' .. d, tostring(now), 'use:' .. d, tostring(num('use:' .. d, 0) + amount))
end

-- Drop process pid's reservations; return the output tokens reserved beyond the pool's average output.
local function drop(pid)
  local avg_o = num('avg_o', 0)
  local back = 0
  local cursor = '0'
  repeat
    local page = redis.call('HSCAN', RES, cursor, 'MATCH', pid .. ':*', 'COUNT', 1000)
    cursor = page[1]
    local found = page[2]
    for k = 1, #found, 2 do
      local o = tonumber(string.match(found[k + 1], ' (%S+)$'))
      back = back + math.max(0, o - avg_o)
      redis.call('HDEL', RES, found[k])
    end
  until cursor == '0'
  redis.call('ZREM', PROCS, pid)
  redis.call('HDEL', DEMAND, pid)
  return back
end

-- What every unsettled reservation in the pool holds of dimension d.
local function pending(d)
  local vals = redis.call('HVALS', RES)
  if d == 'r' then return #vals end
  local total = 0
  for _, v in ipairs(vals) do
    local ri, ro = string.match(v, '(%S+) (%S+)')
    if d == 'i' or d == 't' then total = total + tonumber(ri) end
    if d == 'o' or d == 't' then total = total + tonumber(ro) end
  end
  return total
end

local function reap()
  local dead = redis.call('ZRANGEBYSCORE', PROCS, '-inf', now, 'LIMIT', 0, 16)
  for _, pid in ipairs(dead) do
    local back = drop(pid)
    charge('o', -back)
    charge('t', -back)
  end
end
"""

# ARGV: pid, reservation id, input tokens, output tokens, lease seconds.
# -> {1, wait, binding, pause, pace epoch} admitted (send after `wait` seconds) or {0, pause, 'cooldown', pause,
# pace epoch}.
RESERVE = (
    _PRELUDE
    + """
local pid, rid = ARGV[1], ARGV[2]
local inp, out, lease = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
reap()
local cool = num('cool', 0) - now
if cool > 0 then return {0, tostring(cool), 'cooldown', tostring(cool), ST['pepoch'] or '0'} end
local amounts = {r = 1, i = inp, o = out, t = inp + out}
local worst, binding = 0, ''
local writes = {}  -- one HSET for every dimension: each write command costs Redis more than the Lua around it
for _, d in ipairs(DIMS) do
  local lvl, cap, rate = level(d)
  if lvl ~= nil then
    local amount = amounts[d]
    -- Hold at least two requests of this size: a bucket smaller than one request admits it only when full,
    -- and a refund arriving then would spill over and be lost.
    if cap < 2 * amount then
      cap = 2 * amount
      table.insert(writes, 'cap:' .. d)
      table.insert(writes, tostring(cap))
    end
    local wait = (math.min(amount, cap) - lvl) / rate
    if wait > worst then worst, binding = wait, d end
    table.insert(writes, 'lvl:' .. d)
    table.insert(writes, tostring(lvl - amount))
    table.insert(writes, 'at:' .. d)
    table.insert(writes, tostring(now))
    table.insert(writes, 'use:' .. d)  -- the pool's consumption so far: flow evidence of the window
    table.insert(writes, tostring(num('use:' .. d, 0) + amount))
  end
end
-- The slow-start ramp spaces admissions (GCRA) at a rate doubling every round trip since it began.
if ST['ramp'] == '1' then
  local rtt = num('rrtt', 0.25)
  local send = math.max(now + worst, num('rtat', now))
  local rate = 4 / rtt * 2 ^ math.min(40, math.max(0, send - num('rstart', now)) / rtt)
  if send - now > worst then worst, binding = send - now, 'r' end
  table.insert(writes, 'rtat')
  table.insert(writes, tostring(send + 1 / rate))
end
-- When the last reservation goes out: until then the pool's consumption (`use`) counts requests not sent yet.
if worst > 0 and now + worst > num('sched', 0) then
  table.insert(writes, 'sched')
  table.insert(writes, tostring(now + worst))
end
if #writes > 0 then redis.call('HSET', S, unpack(writes)) end
-- A process that has not sent its heartbeat yet still gets a lease, so its reservation can be reaped.
if not redis.call('ZSCORE', PROCS, pid) then
  redis.call('ZADD', PROCS, now + lease, pid)
end
redis.call('HSET', RES, pid .. ':' .. rid, inp .. ' ' .. out)
return {1, tostring(worst), binding, '0', ST['pepoch'] or '0'}
"""
)

# ARGV: pid, reservation id, mode ('ok' | 'charged' | 'refund'), input used, output used, latency seconds.
# 'ok' charges what the server counted and refunds the rest; 'charged' keeps the request and input spent and
# refunds the output (a 5xx or a timeout); 'refund' gives everything back (a 429 was never admitted).
# -> 1, or 0 when the reservation is unknown (its process was reaped meanwhile).
SETTLE = (
    _PRELUDE
    + """
local pid, rid, mode = ARGV[1], ARGV[2], ARGV[3]
local used_i, used_o, latency = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local key = pid .. ':' .. rid
local v = redis.call('HGET', RES, key)
if not v then return 0 end
redis.call('HDEL', RES, key)
local ri, ro = string.match(v, '(%S+) (%S+)')
ri, ro = tonumber(ri), tonumber(ro)
local di, dout, dr = 0, -ro, 0
if mode == 'ok' then
  di, dout = used_i - ri, used_o - ro
elseif mode == 'refund' then
  di, dr = -ri, -1
end
-- A refused request's place in a smooth bucket's spacing is not given back: it would go to a request sent at the
-- same moment as another, a burst into the short-interval bucket that just refused (as the in-process pace).
local function settle(d, amount)
  if not (mode == 'refund' and ST['smooth:' .. d] == '1') then charge(d, amount) end
end
settle('r', dr)
settle('i', di)
settle('o', dout)
settle('t', di + dout)
if mode == 'ok' then
  -- Exponentially weighted averages shared by every process: Little's law sizes the pool's concurrency.
  local function ewma(name, x)
    local old = num(name, nil)
    if old == nil then old = x end
    put(name, tostring(old + 0.1 * (x - old)))
  end
  ewma('lat', latency)
  ewma('avg_i', used_i)
  ewma('avg_o', used_o)
  local aimd = num('aimd', 4)
  if num('slow', 1) == 1 then aimd = aimd + 1 else aimd = aimd + 1 / math.max(1, aimd) end
  put('aimd', tostring(math.min(aimd, 100000)), 'seen', '1')
end
return 1
"""
)

# ARGV: smooth burst seconds, '1' to pace smoothly from the start ('0' not), the round trip to the headers
# ('' = not from a response), then per dimension r, i, o, t: limit, window seconds ('' = learn it), remaining,
# tolerance, reset seconds, reset error, the server's own limit ('' = absent). A changed limit or window
# resizes the bucket keeping what is spent spent; `remaining` pulls the level down (never up: reservations made
# since the server answered are not in its count yet). The first response's headers start the ramp, unless the
# pool paces smoothly.
#
# The window is learnt by the pool from every process's headers, as `window.py` learns it in one process: each
# reset narrows an interval (`wlo`, `whi`), and the flow between two responses, with the pool's own
# consumption (`use`) known, bounds the rate from below (`fhi`, from the anchor `fat`, `frem`, `fuse`). The
# window paced by is the longest consistent with both (never faster than the server); a minute until any.
OBSERVE = (
    _PRELUDE
    + """
local INF = math.huge

local function learn(d, limit, remaining, err, reset_in, reset_err)
  if reset_in ~= nil then
    local missing = limit - remaining
    local mlo, mhi = missing - err, INF
    if remaining > 0 then mhi = missing + err end  -- 0 may hide a debt
    local rlo, rhi = math.max(0, reset_in - reset_err), reset_in + reset_err
    local lo, hi = 0, INF
    if mhi < INF then lo = limit * rlo / mhi end
    if mlo > 0 then hi = limit * rhi / mlo end
    if lo > 0 or hi < INF then
      local wlo, whi = math.max(num('wlo:' .. d, 0), lo), math.min(num('whi:' .. d, INF), hi)
      if wlo > whi then wlo, whi = lo, hi end  -- a contradiction (a changed limit): start again from this one
      put('wlo:' .. d, tostring(wlo))
      if whi < INF then put('whi:' .. d, tostring(whi)) else redis.call('HDEL', S, 'whi:' .. d) end
    end
  end
  local use = num('use:' .. d, 0)
  if remaining >= limit - err then
    redis.call('HDEL', S, 'fat:' .. d)  -- full: refill was capped, the next span starts below full
    ST['fat:' .. d] = nil
  elseif ST['fat:' .. d] == nil then
    put('fat:' .. d, tostring(now), 'frem:' .. d, tostring(remaining), 'fuse:' .. d, tostring(use))
  else
    local span = now - num('fat:' .. d, now)
    -- Reservations are spread into the future (the ramp's spacing, a smooth pace, a bucket in debt): while some
    -- are not sent yet, `use` counts them and the refill would read too fast.
    if span >= 0.25 and num('sched', 0) <= now then
      local refilled = (remaining - num('frem:' .. d, 0)) + (use - num('fuse:' .. d, 0)) - 2 * err
      if refilled > 2 * err then put('fhi:' .. d, tostring(limit * span / refilled)) end
    end
  end
  local hi = math.min(num('whi:' .. d, INF), num('fhi:' .. d, INF))
  if hi == INF then return nil end
  return math.max(hi, num('wlo:' .. d, 0))
end

-- A bucket that never shows evidence (output counted as produced stays nearly full) takes the longest window
-- learnt for the others: the API's limits share one window (a minute); a minute when none is known.
local learnt = {}
for k, d in ipairs(DIMS) do
  local base = 3 + (k - 1) * 7
  local limit, window = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2])
  local remaining, tolerance = tonumber(ARGV[base + 3]), tonumber(ARGV[base + 4])
  local reset_in, reset_err = tonumber(ARGV[base + 5]), tonumber(ARGV[base + 6])
  local server_limit = tonumber(ARGV[base + 7])
  if limit ~= nil and limit > 0 and window == nil and remaining ~= nil and server_limit ~= nil and server_limit > 0 then
    learnt[d] = learn(d, server_limit, remaining, tolerance, reset_in, reset_err or 0)
  end
end
local shared_window = nil
for _, d in ipairs(DIMS) do
  local w = learnt[d]
  if w == nil then
    local hi = math.min(num('whi:' .. d, INF), num('fhi:' .. d, INF))
    if hi < INF then w = math.max(hi, num('wlo:' .. d, 0)) end
  end
  if w ~= nil and (shared_window == nil or w > shared_window) then shared_window = w end
end

local burst, start_smooth, rtt = tonumber(ARGV[1]), ARGV[2] == '1', tonumber(ARGV[3])
local smooth_all = start_smooth
for k, d in ipairs(DIMS) do
  local base = 3 + (k - 1) * 7
  local limit, window = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2])
  local remaining, tolerance = tonumber(ARGV[base + 3]), tonumber(ARGV[base + 4])
  local reset_in, reset_err = tonumber(ARGV[base + 5]), tonumber(ARGV[base + 6])
  local server_limit = tonumber(ARGV[base + 7])
  if limit ~= nil and limit > 0 and window == nil then
    window = learnt[d]
    if window == nil and remaining == nil then  -- given limits only: keep the window in force
      local rate = num('rate:' .. d, 0)
      if rate > 0 and num('lim:' .. d, 0) == limit then window = limit / rate end
    end
    if window == nil then window = shared_window or 60 end
  end
  if limit ~= nil and limit > 0 and window ~= nil and window > 0 then
    local rate = limit / window
    local lvl, cap, old_rate = level(d)
    local fresh = lvl == nil
    if start_smooth and ST['smooth:' .. d] ~= '1' then put('smooth:' .. d, '1') end
    local smooth = ST['smooth:' .. d] == '1'
    if not smooth then smooth_all = false end
    local paced = rate
    if smooth then paced = math.max(rate, num('pace:' .. d, 0)) end
    if lvl == nil or num('lim:' .. d, 0) ~= limit or old_rate ~= paced then
      local new_cap = math.max(limit, 1)
      if smooth then new_cap = math.max(paced * burst, 1) end
      if lvl == nil then lvl = new_cap else lvl = new_cap - (cap - lvl) end
      cap = new_cap
      put('lim:' .. d, tostring(limit), 'rate:' .. d, tostring(rate), 'cap:' .. d, tostring(cap))
    end
    if remaining ~= nil and lvl > remaining + tolerance then lvl = remaining end
    -- A limit learnt now: what is still reserved was never charged to it and the server may not have counted
    -- it yet, so it comes off the start (the answered request too: one too many, on the safe side). Few
    -- reservations exist before the first limit is known.
    if fresh then lvl = lvl - pending(d) end
    put('lvl:' .. d, tostring(lvl), 'at:' .. d, tostring(now))
  end
end
if rtt ~= nil and not smooth_all and ST['ramp'] == nil then
  -- As TCP's slow start: the first round trip to the headers, at most a quarter second (a refusal's round trip).
  local first = math.min(0.25, math.max(rtt, 0.01))
  put('ramp', '1', 'rstart', tostring(now), 'rtat', tostring(now), 'rrtt', tostring(first))
end
put('seen', '1')
return 1
"""
)

# ARGV: smooth burst seconds, then the dimensions (r, i, o, t) a short-interval 429 named. They are paced
# smoothly from now on (a bucket of one burst, empty), at the learnt rate until a probe (`PACE`), and the ramp
# stops. -> 1.
SMOOTH = (
    _PRELUDE
    + """
local burst = tonumber(ARGV[1])
for k = 2, #ARGV do
  local d = ARGV[k]
  -- Already smooth: a process that had not heard yet; the pool's pace (`PACE`) stays as it is.
  if ST['smooth:' .. d] ~= '1' then
    put('smooth:' .. d, '1', 'pepoch', tostring(num('pepoch', 0) + 1))
    local lvl, cap, rate = level(d)
    if lvl ~= nil then
      -- Empty, as the server's short-interval bucket is after the refusal, from when the reservations made
      -- before it have gone out: a full one would send a burst into it, a 429 each.
      local new_cap = math.max(rate * burst, 1)
      lvl = math.min(0, lvl, -math.max(0, num('sched', 0) - now) * rate)
      put('cap:' .. d, tostring(new_cap), 'lvl:' .. d, tostring(lvl), 'at:' .. d, tostring(now))
    end
  end
end
put('ramp', '0')
return 1
"""
)

# ARGV: smooth burst seconds, dimension, the pace epoch the step was decided in, the new pace (tokens per
# second), the good and the slowest refused pace ('' = none), '1' for a refusal ('0' a probe upwards). `pepoch`
# counts the pool's changes of pace (RESERVE answers it with each admission): a step is taken only in the epoch it
# was decided in. So two processes never double one pace twice, and a refusal of a request admitted before the
# last change (in flight when another process stepped back) is not a refusal of the pace in force. A refusal
# only slows the pool down and empties the bucket, as the server's short-interval bucket is after one, until the
# reservations made before it have gone out (they are not taken back).
# -> 1 when the step was taken, else 0.
PACE = (
    _PRELUDE
    + """
local burst, d, epoch, to = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local refusal = ARGV[7] == '1'
local lvl, cap, rate = level(d)
if lvl == nil or ST['smooth:' .. d] ~= '1' or epoch ~= num('pepoch', 0) then return 0 end
if refusal and rate <= to * (1 + 1e-9) then return 0 end
local paced = math.max(num('rate:' .. d, 0), to)
local new_cap = math.max(paced * burst, 1)
-- Reservations made before the step still go out at the old pace until `sched`: the new pace starts after them.
if refusal then lvl = math.min(0, lvl, -math.max(0, num('sched', 0) - now) * paced) end
put('pace:' .. d, tostring(to), 'pgood:' .. d, ARGV[5], 'pref:' .. d, ARGV[6], 'pepoch', tostring(epoch + 1),
    'cap:' .. d, tostring(new_cap), 'lvl:' .. d, tostring(math.min(lvl, new_cap)), 'at:' .. d, tostring(now))
return 1
"""
)

# ARGV: seconds (0 = no pause), jitter seconds. A 429 (or an overload, seconds 0): nobody in the pool is
# admitted until the pause ends, and the adaptive concurrency halves. -> seconds until the pause ends.
PAUSE = (
    _PRELUDE
    + """
local seconds, jitter = tonumber(ARGV[1]), tonumber(ARGV[2])
local cool = num('cool', 0)
if seconds > 0 then
  cool = math.max(cool, now + seconds + jitter)
  put('cool', tostring(cool))
end
put('aimd', tostring(math.max(1, num('aimd', 4) / 2)), 'slow', '0')
return tostring(math.max(0, cool - now))
"""
)

# ARGV: pid, lease seconds, demand. Renews the lease, reaps lapsed processes, and returns what the pool knows:
# {live processes, total demand, pause remaining, seen, aimd, lat, avg_i, avg_o, then lim and rate per dim,
# then smooth per dim, then pace, pgood, pref and wlo per dim, then the pace epoch}.
HEARTBEAT = (
    _PRELUDE
    + """
local pid, lease, demand = ARGV[1], tonumber(ARGV[2]), ARGV[3]
reap()
redis.call('ZADD', PROCS, now + lease, pid)
redis.call('HSET', DEMAND, pid, demand)
local total = 0
for _, v in ipairs(redis.call('HVALS', DEMAND)) do total = total + tonumber(v) end
local out = {tostring(redis.call('ZCARD', PROCS)), tostring(total), tostring(math.max(0, num('cool', 0) - now))}
for _, name in ipairs({'seen', 'aimd', 'lat', 'avg_i', 'avg_o'}) do
  table.insert(out, ST[name] or '')
end
for _, d in ipairs(DIMS) do
  table.insert(out, ST['lim:' .. d] or '')
  table.insert(out, ST['rate:' .. d] or '')
end
for _, d in ipairs(DIMS) do table.insert(out, ST['smooth:' .. d] or '') end
for _, d in ipairs(DIMS) do
  for _, name in ipairs({'pace:', 'pgood:', 'pref:', 'wlo:'}) do table.insert(out, ST[name .. d] or '') end
end
table.insert(out, ST['pepoch'] or '0')
return out
"""
)

# ARGV: pid. A process closing cleanly leaves the pool at once: its lease, demand and unsettled reservations go
# (their output tokens refunded as a reaped process's are). -> 1.
LEAVE = (
    _PRELUDE
    + """
local back = drop(ARGV[1])
charge('o', -back)
charge('t', -back)
return 1
"""
)
