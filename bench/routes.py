"""Routes and caching figures: warm-up share of cache reads, estimate against billed cost, and the cost example.

`python -m bench.routes` runs everything against emulators on 127.0.0.1 (bounded: a few thousand requests) and
prints a Markdown section for bench/RESULTS.md. Parts:

- warmup: 1,000 requests sharing a 2,000-token system prompt (Sonnet 4.5), through `run` with warm-up, `run`
  with the breakpoints in the input and no warm-up (naive fan-out), and `batch` with warm-up (priming batch).
- estimate: a mixed workload (two models, prompts of varied length) planned by `plan_file`, then billed online
  and through the batch API; the estimate's error per route.
- cost: the seed's worked example (100,000 requests of 2,000 input and 500 output tokens on Sonnet 4.6) from
  the planner: online, batch, with caching (1,500 of the 2,000 tokens a shared prompt), batch with caching.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from sluicegate._models import RequestItem
from sluicegate.emulator import EmulatorConfig, run_emulator
from sluicegate.jobs.calibrate import count_tokens_scale
from sluicegate.jobs.estimate import Estimate, ModelEstimate
from sluicegate.jobs.planner import CacheEstimate, plan_file, plan_routes
from sluicegate.jobs.reader import Defaults, iter_lines, read_requests
from sluicegate.pricing import default_table

SYSTEM = ("refund policy clause " * 400)[:8000]  # 2,000 tokens as the emulator counts them


def _sluicegate(env: dict[str, str], *args: str) -> tuple[int, float]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "sluicegate", *args], env=env, capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        raise RuntimeError(proc.stderr[-2000:])
    return proc.returncode, time.monotonic() - started


def _usage(out: Path) -> dict[str, int]:
    totals = {"read": 0, "written": 0, "input": 0, "n": 0}
    for line in out.read_text().splitlines():
        usage = json.loads(line)["result"]["message"]["usage"]
        totals["read"] += usage.get("cache_read_input_tokens", 0)
        totals["written"] += usage.get("cache_creation_input_tokens", 0)
        totals["input"] += usage.get("input_tokens", 0)
        totals["n"] += 1
    return totals


def _billed(out: Path) -> float:
    with sqlite3.connect(out.with_name(out.name + ".sluicegate.db")) as db:
        return float(db.execute("SELECT total(cost) FROM entries").fetchone()[0])


def _env(emu: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OPENAI_"))}
    env.update({"ANTHROPIC_API_KEY": "bench", "ANTHROPIC_BASE_URL": emu.base_url})
    return env


def warmup(tmp: Path, n: int = 1000) -> list[str]:
    inp = tmp / "shared.jsonl"
    own = tmp / "own.jsonl"
    with inp.open("w") as f, own.open("w") as g:
        for i in range(n):
            line = {"id": f"t{i}", "system": SYSTEM, "prompt": f"Ticket {i}: my order is late.", "max_tokens": 40}
            f.write(json.dumps({**line, "model": "claude-sonnet-4-5"}) + "\n")
            marked = [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}]
            g.write(json.dumps({**line, "model": "claude-sonnet-4-5", "system": marked}) + "\n")
    rows = [
        "| route | requests | shared-prefix tokens read from the cache | cache writes | wall s |",
        "|---|---:|---:|---:|---:|",
    ]
    config = EmulatorConfig(tier=4, minute=6.0, first_token_latency=0.3, per_token_latency=0.004, batch_seconds=30.0)
    with run_emulator(config) as emu:
        env = _env(emu)
        for name, source, extra, command in (
            ("online, warm-up", inp, (), "run"),
            ("online, breakpoints in the input, no warm-up (naive fan-out)", own, ("--no-cache-warmup",), "run"),
            ("batch, warm-up (one-request priming batch, 1 h TTL)", inp, (), "batch"),
            ("batch, breakpoints in the input, no warm-up", own, ("--no-cache-warmup",), "batch"),
        ):
            emu.reset()  # each variant starts with an empty cache
            out = tmp / f"{abs(hash(name))}.jsonl"
            args = [command, str(source), "-o", str(out), "--quiet", *extra]
            args += ["--minute", "6"] if command == "run" else ["--poll-interval", "0.5"]
            _, wall = _sluicegate(env, *args)
            used = _usage(out)
            share = used["read"] / (used["read"] + used["written"]) if used["read"] + used["written"] else 0.0
            rows.append(
                f"| {name} | {used['n']:,} | {100 * share:.1f}% ({used['read']:,}) | {used['written']:,} | {wall:.1f} |"
            )
        emu.reset()
        rows.append(_naive_gather(emu, n))
    return rows


def _naive_gather(emu: Any, n: int, concurrency: int = 200) -> str:
    """The usual snippet: the official SDK, breakpoints in place, `asyncio.gather` under a semaphore."""
    import anthropic

    async def main() -> list[Any]:
        gate = anyio.Semaphore(concurrency)
        client = anthropic.AsyncAnthropic(api_key="bench", base_url=emu.base_url, max_retries=8)
        marked = [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}]
        usages: list[Any] = []

        async def one(i: int) -> None:
            async with gate:
                answer = await client.messages.create(
                    model="claude-sonnet-4-5",
                    max_tokens=40,
                    system=marked,  # type: ignore[arg-type]
                    messages=[{"role": "user", "content": f"Ticket {i}: my order is late."}],
                )
                usages.append(answer.usage)

        async with client, anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(one, i)
        return usages

    started = time.monotonic()
    usages = anyio.run(main)
    read = sum(u.cache_read_input_tokens or 0 for u in usages)
    written = sum(u.cache_creation_input_tokens or 0 for u in usages)
    share = read / (read + written) if read + written else 0.0
    wall = time.monotonic() - started
    name = f"online, SDK + asyncio gather ({concurrency} at once), breakpoints in the input"
    return f"| {name} | {len(usages):,} | {100 * share:.1f}% ({read:,}) | {written:,} | {wall:.1f} |"


def estimate_vs_billed(tmp: Path, n: int = 400) -> list[str]:
    rng = random.Random(5)
    inp = tmp / "mixed.jsonl"
    with inp.open("w") as f:
        for i in range(n):
            words = " ".join(
                rng.choice(["order", "refund", "late", "parcel", "account"]) for _ in range(rng.randint(20, 600))
            )
            model = "claude-haiku-4-5" if i % 3 else "claude-sonnet-4-6"
            f.write(json.dumps({"id": f"m{i}", "prompt": words, "model": model, "max_tokens": 200}) + "\n")
    # Answers of 30-120 tokens: 75 on average, 0.375 of max_tokens, given to the planner as the expected share.
    config = EmulatorConfig(tier=4, minute=6.0, min_output_tokens=30, max_output_tokens=120, batch_seconds=20.0)
    rows = [
        "| route | estimate from characters | estimate after count_tokens on 20 | billed | error (raw / counted) |",
        "|---|---:|---:|---:|---:|",
    ]
    with run_emulator(config) as emu:
        env = _env(emu)
        with inp.open("rb") as f:
            parsed = itertools.islice(read_requests(iter_lines(f), defaults=Defaults()), 20)
            sample = [p.params for p in parsed if isinstance(p, RequestItem)]
        scale = anyio.run(lambda: count_tokens_scale(sample, api_key="bench", base_url=emu.base_url))
        plans = {}
        for label, factor in (("raw", 1.0), ("counted", scale or 1.0)):
            planned = plan_file(
                inp, Defaults(), default_table(), provider="anthropic", rpm=None, itpm=None, otpm=None,
                deadline=None, expected_output=0.375, input_scale=factor,
            )  # fmt: skip
            plans[label] = {r.route: r.cost or 0.0 for r in planned.plan.routes}
        for route in ("online", "batch"):
            out = tmp / f"mixed-{route}.jsonl"
            _sluicegate(env, "run", str(inp), "-o", str(out), "--route", route, "--minute", "6", "--quiet")
            billed = _billed(out)
            raw, counted = plans["raw"][route], plans["counted"][route]
            errors = f"{100 * (raw - billed) / billed:+.1f}% / {100 * (counted - billed) / billed:+.1f}%"
            rows.append(f"| {route} | ${raw:.4f} | ${counted:.4f} | ${billed:.4f} | {errors} |")
    return rows


def cost_example() -> list[str]:
    seed = Estimate(models={"claude-sonnet-4-6": ModelEstimate(100_000, 200_000_000, 50_000_000, 50_000_000)})
    cache = CacheEstimate(read={"claude-sonnet-4-6": 1_500 * 99_999}, written={"claude-sonnet-4-6": 1_500})
    limits: dict[str, Any] = {"rpm": 4000.0, "itpm": 2_000_000.0, "otpm": 400_000.0}
    plain = {r.route: r for r in plan_routes(seed, default_table(), provider="anthropic", **limits).routes}
    cached = {
        r.route: r for r in plan_routes(seed, default_table(), provider="anthropic", cache=cache, **limits).routes
    }
    rows = ["| | online | Batch API |", "|---|---:|---:|"]
    rows.append(f"| no caching | ${plain['online'].cost:,.2f} | ${plain['batch'].cost:,.2f} |")
    rows.append(f"| 1,500-token shared prompt cached | ${cached['online'].cost:,.2f} | ${cached['batch'].cost:,.2f} |")
    rows.append(
        f"| online duration at Tier 4 | {plain['online'].seconds / 60:,.0f} min | |"  # type: ignore[operator]
    )
    return rows


def main() -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        print("### Warm-up\n")
        print("\n".join(warmup(tmp)))
        print("\n### Estimate against billed cost (mixed workload)\n")
        print("\n".join(estimate_vs_billed(tmp)))
    print("\n### The seed's worked example, priced by the planner\n")
    print("\n".join(cost_example()))


if __name__ == "__main__":
    main()
