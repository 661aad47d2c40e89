"""Gateway benchmarks: `python -m bench.serve.run [system] [ttft] [ttft-paired] [ttft-staggered] [ttft-floor]
[streams]` prints Markdown.

- system: the seed's naive `asyncio.gather` over 300 prompts (stock SDK, defaults) at Tier 1 in compressed time,
  straight at the API and through `sluicegate serve`, clean and with 5% 529 + 2% 500 upstream faults.
- ttft: time to first token with 100 concurrent streams (100 clients, each streaming one answer after another),
  straight and through the gateway, rounds alternated; the limits are far above the load so only the gateway's
  own cost shows.
- ttft-paired: the same, with 100 clients on each path at the same time (fairer on a shared, loaded machine).
- ttft-staggered: ttft-paired with each client starting at its own (seeded) random moment and a short random
  pause between its streams: still about 100 streams open per path, but requests arrive spread out in time
  instead of in the synchronized waves of ttft-paired.
- ttft-floor: ttft-paired with a bare TCP relay (tcp_relay.py) in the gateway's place: what one more process and
  hop add in those waves, whatever that process does.
- streams: 1,000 streams held open through the gateway at once; its resident memory before and at the peak.

Every server is its own process (`sluicegate emulate`, `sluicegate serve`), the clients run in this one.
"""

from __future__ import annotations

import json
import os
import random
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2

from sluicegate.demo.peers import Recorder, gather_all
from sluicegate.demo.workload import make_documents, tally

HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01", "content-type": "application/json"}


@contextmanager
def _process(
    args: list[str], env: dict[str, str] | None = None, module: str = "sluicegate"
) -> Iterator[tuple[str, int]]:
    """Start a `sluicegate` command (or another module's); yield (the URL from its first stdout line, its pid)."""
    base_env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**base_env, **(env or {})},
    )
    try:
        assert proc.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=30):
            raise RuntimeError(f"{args[0]} did not start")
        line = proc.stdout.readline().strip()
        yield line.split()[-1], proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- system --------------------------------------------------------------------------------------------------


def _gather(base_url: str, n: int) -> dict[str, Any]:
    docs = make_documents(n, max_tokens=64)
    rec = Recorder()
    start = time.monotonic()
    anyio.run(lambda: gather_all(docs, rec, base_url=base_url, api_key="k", request_timeout=600.0))
    wall = time.monotonic() - start
    result = tally(docs, rec.outcomes)
    times = sorted(o.at for o in rec.outcomes.values() if o.text is not None)
    return {"wall": wall, "ok": result.ok, "failed": result.failed, "lost": result.missing, "times": times}


def system() -> list[str]:
    minute, rpm, n = 1.2, 50, 300
    best_span = (n - rpm) / (rpm / minute)
    rows = [
        "| run | answered | client errors | wall s | first→last answer s | vs best from a full bucket | steady util. |",
        "|---|---|---|---|---|---|---|",
    ]
    for faults in ((), ("--fault", "overloaded:0.05", "--fault", "api_error:0.02")):
        label = "faults 5% 529 + 2% 500" if faults else "clean"
        emulate = ["emulate", "--tier", "1", "--minute", str(minute), "--latency", "0.3", "--jitter", "0.3", *faults]
        with _process(emulate) as (emu_url, _):
            direct = _gather(emu_url.rsplit("/v1", 1)[0], n)
        serve = ["serve", "--port", "0", "--tier", "1", "--minute", str(minute), *faults]
        with _process(serve) as (gw_url, _):
            via = _gather(gw_url, n)
        for name, r in (("gather straight at the API", direct), ("gather through sluicegate serve", via)):
            times = r["times"]
            span = times[-1] - times[0] if len(times) > 1 else float("nan")
            steady = (280 - 60) / (times[279] - times[59]) / (rpm / minute) if len(times) >= 280 else float("nan")
            rows.append(
                f"| {name}, {label} | {r['ok']}/{n} | {r['failed']} | {r['wall']:.1f} | {span:.1f} | "
                f"{best_span / span:.2f} | {steady:.2f} |"
            )
    return rows


# -- ttft ----------------------------------------------------------------------------------------------------


async def _ttft_round(
    url: str,
    workers: int,
    seconds: float = 8.0,
    waits: list[float] | None = None,
    *,
    stagger: Stagger | None = None,
    streams: list[int] | None = None,
) -> list[float]:
    """`workers` clients, each streaming one answer after another for `seconds`: TTFT of every stream. Through
    the gateway, `waits` gets its own view of each stream: `x-sluicegate-queued-ms`, from the request's arrival
    in its queue to its leaving for the upstream. With `stagger`, each client starts after its own random offset
    and thinks a little between streams; only streams started once every client is running count (the round
    lasts `stagger.span` longer). `streams` gets the number of streams finished, counted or not."""
    body = json.dumps(
        {"model": "claude-haiku-4-5", "max_tokens": 32, "stream": True, "messages": [{"role": "user", "content": "x"}]}
    ).encode()
    out: list[float] = []
    limits = httpx2.Limits(max_connections=workers + 10, max_keepalive_connections=workers + 10)
    begin = time.monotonic()
    steady = begin + (stagger.span if stagger else 0.0)
    end = steady + seconds
    async with httpx2.AsyncClient(timeout=60, limits=limits) as http:

        async def worker(rng: random.Random | None) -> None:
            if rng is not None and stagger is not None:
                await anyio.sleep(rng.uniform(0, stagger.span))
            while time.monotonic() < end:
                first: float | None = None
                start = time.monotonic()
                async with http.stream("POST", url + "/v1/messages", content=body, headers=HEADERS) as r:
                    async for line in r.aiter_lines():
                        if first is None and line.startswith("event: content_block_delta"):
                            first = time.monotonic() - start
                    queued = r.headers.get("x-sluicegate-queued-ms")
                if streams is not None:
                    streams[0] += 1
                if first is not None and start >= steady:
                    out.append(first)
                    if waits is not None and queued is not None:
                        waits.append(float(queued) / 1000)
                if rng is not None and stagger is not None:
                    await anyio.sleep(rng.uniform(0, stagger.think))

        async with anyio.create_task_group() as tg:
            for i in range(workers):
                tg.start_soon(worker, random.Random(f"{stagger.seed}-{i}") if stagger else None)
    return out


@dataclass(frozen=True, slots=True)
class Stagger:
    """Clients spread in time: each starts after a uniform random offset within `span` (one stream's length),
    then waits a uniform random `think` (at most) between streams; `seed` makes the pattern repeatable."""

    seed: int
    span: float
    think: float = 0.2


def _cpu_s(pid: int) -> float:
    """User plus system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ttft(rounds: int = 4, n: int = 100, latency: float = 3.0) -> list[str]:
    # `latency` s to the first token, 20 ms per token after it: with 100 clients about 100 / (latency + 0.7)
    # new streams per second.
    emulate = ["emulate", "--rpm", "1000000", "--itpm", "1000000000", "--otpm", "1000000000"]
    emulate += ["--latency", str(latency), "--per-token", "0.02"]
    direct: list[float] = []
    via: list[float] = []
    with _process(emulate) as (emu_url, _):
        base = emu_url.rsplit("/v1", 1)[0]
        serve = ["serve", "--port", "0", "--base-url", base, "--max-concurrency", "1000"]
        with _process(serve, {"ANTHROPIC_API_KEY": "k"}) as (gw_url, _):
            anyio.run(_ttft_round, gw_url, n, 3.0)  # warm-up: the limiter's first probe and the pools
            anyio.run(_ttft_round, base, n, 3.0)
            for _ in range(rounds):
                direct += anyio.run(_ttft_round, base, n, 12.0)
                via += anyio.run(_ttft_round, gw_url, n, 12.0)
    rows = [f"first token after {latency:g} s upstream; 100 clients streaming back to back", ""]
    return rows + _ttft_table(direct, via)


def _ttft_table(
    direct: list[float],
    via: list[float],
    waits: list[float] | None = None,
    via_name: str = "sluicegate serve",
    added_by: str = "the gateway",
) -> list[str]:
    """Both paths' TTFT percentiles and what the gateway adds, as markdown rows; with `waits`, the gateway's own
    view of the time between a request's arrival and its leaving for the upstream."""
    rows = ["| path | streams | TTFT p50 ms | TTFT p99 ms |", "|---|---|---|---|"]
    for name, values in (("straight at the emulator", direct), (f"through {via_name}", via)):
        rows.append(f"| {name} | {len(values)} | {_pct(values, 0.5) * 1000:.1f} | {_pct(values, 0.99) * 1000:.1f} |")
    rows.append(
        f"| **added by {added_by}** | | **{(_pct(via, 0.5) - _pct(direct, 0.5)) * 1000:.1f}** | "
        f"**{(_pct(via, 0.99) - _pct(direct, 0.99)) * 1000:.1f}** |"
    )
    if waits:
        rows.append(
            f"| of which in the gateway before sending (x-sluicegate-queued-ms) | {len(waits)} | "
            f"{_pct(waits, 0.5) * 1000:.1f} | {_pct(waits, 0.99) * 1000:.1f} |"
        )
    return rows


def ttft_paired(rounds: int = 3, n: int = 100, latency: float = 3.0, seconds: float = 12.0) -> list[str]:
    """`n` clients through the gateway and `n` straight at the emulator at the same time: on a shared machine
    both paths then see the same CPU contention at each moment, which alternating rounds do not give."""
    return _paired(rounds, n, latency, seconds, staggered=False)


def ttft_staggered(rounds: int = 3, n: int = 100, latency: float = 3.0, seconds: float = 12.0) -> list[str]:
    """As `ttft_paired`, with every client starting at its own random moment and thinking 0-0.2 s between
    streams: about `n` streams open on each path at every moment, their requests spread out in time rather
    than arriving in waves (the bench's clients in `ttft_paired` all start together and stay together)."""
    return _paired(rounds, n, latency, seconds, staggered=True)


def ttft_floor(rounds: int = 3, n: int = 100, latency: float = 3.0, seconds: float = 12.0) -> list[str]:
    """`ttft_paired` with a bare TCP relay (`tcp_relay.py`) where the gateway stands: the TTFT that one more
    process and hop add in the same waves, whatever that process does, so the floor under the gateway's figure."""
    return _paired(rounds, n, latency, seconds, staggered=False, relay=True)


def _paired(rounds: int, n: int, latency: float, seconds: float, *, staggered: bool, relay: bool = False) -> list[str]:
    emulate = ["emulate", "--rpm", "1000000", "--itpm", "1000000000", "--otpm", "1000000000"]
    emulate += ["--latency", str(latency), "--per-token", "0.02"]
    span = latency + 32 * 0.02  # one stream: the first token, then 32 tokens
    direct: list[float] = []
    via: list[float] = []
    waits: list[float] = []
    counts = {"direct": [0], "via": [0]}

    async def both(base: str, gateway: str, seconds: float, seed: int | None) -> tuple[list[float], list[float]]:
        out: dict[str, list[float]] = {}

        async def one(name: str, url: str, waits: list[float] | None, stagger: Stagger | None) -> None:
            out[name] = await _ttft_round(url, n, seconds, waits, stagger=stagger, streams=counts[name])

        # Each path its own pattern: with one seed the two paths' clients would arrive in pairs.
        direct_stagger = None if seed is None else Stagger(seed=2 * seed, span=span)
        via_stagger = None if seed is None else Stagger(seed=2 * seed + 1, span=span)
        async with anyio.create_task_group() as tg:
            tg.start_soon(one, "direct", base, None, direct_stagger)
            tg.start_soon(one, "via", gateway, waits, via_stagger)
        return out["direct"], out["via"]

    with _process(emulate) as (emu_url, emu_pid):
        base = emu_url.rsplit("/v1", 1)[0]
        serve = ["serve", "--port", "0", "--base-url", base, "--max-concurrency", "1000"]
        middle = _process([base.removeprefix("http://")], module="bench.serve.tcp_relay") if relay else None
        with middle or _process(serve, {"ANTHROPIC_API_KEY": "k"}) as (gw_url, gw_pid):
            anyio.run(both, base, gw_url, 3.0, None)  # warm-up: the limiter's first probe and the pools
            waits.clear()
            counts["direct"][0] = counts["via"][0] = 0
            cpu = (_cpu_s(gw_pid), _cpu_s(emu_pid), time.process_time())
            for i in range(rounds):
                d, v = anyio.run(both, base, gw_url, seconds, i if staggered else None)
                direct += d
                via += v
            gw_cpu, emu_cpu, bench_cpu = _cpu_s(gw_pid) - cpu[0], _cpu_s(emu_pid) - cpu[1], time.process_time() - cpu[2]
    load = os.getloadavg()[0]
    how = "each client starting at a random moment, 0-0.2 s between its streams" if staggered else "at the same time"
    rows = [f"first token after {latency:g} s upstream; {n} clients on each path, {how}", ""]
    if relay:
        rows += _ttft_table(direct, via, None, "a bare TCP relay", "the relay")
    else:
        rows += _ttft_table(direct, via, waits)
    through, total = max(1, counts["via"][0]), max(1, counts["direct"][0] + counts["via"][0])
    rows += [
        "",
        f"CPU per stream: {'relay' if relay else 'gateway'} {gw_cpu * 1000 / through:.2f} ms (through it); emulator "
        f"{emu_cpu * 1000 / total:.2f} ms (both paths); the bench's clients "
        f"{bench_cpu * 1000 / total:.2f} ms (both paths). Load average (1 min) at the end: {load:.2f}.",
    ]
    return rows


# -- streams -------------------------------------------------------------------------------------------------


async def _hold(url: str, n: int, pid: int) -> dict[str, float]:
    body = json.dumps(
        {"model": "claude-haiku-4-5", "max_tokens": 64, "stream": True, "messages": [{"role": "user", "content": "x"}]}
    ).encode()
    completed = 0
    peak_open = 0
    peak_rss = 0.0
    limits = httpx2.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    async with httpx2.AsyncClient(timeout=120, limits=limits) as http:

        async def one() -> None:
            nonlocal completed
            async with http.stream("POST", url + "/v1/messages", content=body, headers=HEADERS) as r:
                async for line in r.aiter_lines():
                    if line.startswith("event: message_stop"):
                        completed += 1

        async with anyio.create_task_group() as tg, httpx2.AsyncClient(timeout=10) as probe:
            for _ in range(n):
                tg.start_soon(one)
            while completed < n:
                await anyio.sleep(0.25)
                stats = (await probe.get(url + "/_sluicegate/stats")).json()
                peak_open = max(peak_open, stats["in_flight"])  # sent upstream, answer not finished
                peak_rss = max(peak_rss, _rss_mb(pid))
    return {"peak_open": peak_open, "completed": completed, "peak_rss": peak_rss}


def streams(n: int = 1000) -> list[str]:
    # 20 s before the first token and 0.1 s per token: every stream stays open long enough for all to overlap.
    emulate = ["emulate", "--rpm", "1000000", "--itpm", "1000000000", "--otpm", "1000000000"]
    emulate += ["--latency", "20", "--per-token", "0.1"]
    with _process(emulate) as (emu_url, _):
        base = emu_url.rsplit("/v1", 1)[0]
        serve = ["serve", "--port", "0", "--base-url", base, "--max-concurrency", str(n + 100)]
        with _process(serve, {"ANTHROPIC_API_KEY": "k"}) as (gw_url, pid):
            anyio.run(_ttft_round, gw_url, 5, 1.0)  # warm-up
            idle = _rss_mb(pid)
            result = anyio.run(_hold, gw_url, n, pid)
            after = _rss_mb(pid)
    return [
        "| streams started | completed | most in flight at once | gateway RSS idle MB | at peak MB "
        "| per stream in flight KB | after MB |",
        "|---|---|---|---|---|---|---|",
        f"| {n} | {result['completed']:.0f} | {result['peak_open']:.0f} | {idle:.0f} | {result['peak_rss']:.0f} | "
        f"{(result['peak_rss'] - idle) * 1024 / max(1.0, result['peak_open']):.0f} | {after:.0f} |",
    ]


def main(parts: list[str]) -> None:
    chosen = parts or ["system", "ttft", "streams"]
    for part in chosen:
        rows = {
            "system": system,
            "ttft": ttft,
            "ttft-paired": ttft_paired,
            "ttft-staggered": ttft_staggered,
            "ttft-floor": ttft_floor,
            "streams": streams,
        }[part]()
        print(f"\n### {part}\n")
        print("\n".join(rows))
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
