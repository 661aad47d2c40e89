"""Ray Data side by side: `sluicegate.ray.Requests` (4 actors, shared limiter) and Ray's own HTTP processor.

    python -m bench.ray_data --rows 20000 --peer-rows 2000     # prints a Markdown section

Both run on a local Ray cluster against one emulator per system with a 3,000 RPM limit (50 requests/s) and 0.3 s
to first token; 3 rows have no body. Ray's processor (`ray.data.llm.HttpRequestProcessorConfig`, aiohttp) gets
the fairest settings it has: 4 actors, `qps` a quarter of the limit each, 3 retries.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from bench.shared_limits import redis_server
from sluicegate.emulator import EmulatorConfig, run_emulator

KEY = "bench-ray-key"
RPM = 3000
BAD = (17, 4242, 9999)


def _rows(n: int) -> list[dict[str, Any]]:
    return [{"n": i, "body": None if i in BAD else f"ticket {i}: the lift is stuck again"} for i in range(n)]


def _config() -> EmulatorConfig:
    return EmulatorConfig(rpm=RPM, itpm=10_000_000, otpm=10_000_000, minute=60.0, first_token_latency=0.3, seed=3)


def ours(ray: Any, n: int, redis_url: str) -> dict[str, Any]:
    from sluicegate.ray import Requests

    with run_emulator(_config()) as emu:
        started = time.monotonic()
        ds = ray.data.from_items(_rows(n)).map_batches(
            Requests,
            fn_constructor_kwargs={
                "template": "Summarise: {body}",
                "model": "claude-haiku-4-5",
                "max_tokens": 32,
                "base_url": emu.base_url,
                "shared_limits": redis_url,
                "shared_limits_name": "bench-ray",
            },
            concurrency=4,
            batch_size=128,
        )
        out = ds.take_all()
        wall = time.monotonic() - started
        status = {int(k): v for k, v in emu.stats()["status"].items()}
    errored = sorted(r["n"] for r in out if r["error"] is not None)
    return {
        "system": "sluicegate.ray.Requests",
        "rows": n,
        "answered": sum(1 for r in out if r["text"]),
        "errored_rows": errored,
        "failed": None,
        "wall": wall,
        "ok": status.get(200, 0),
        "429": status.get(429, 0),
        "sent": sum(status.values()),
    }


def peer(ray: Any, n: int) -> dict[str, Any]:
    from ray.data.llm import HttpRequestProcessorConfig, build_processor

    with run_emulator(_config()) as emu:
        config = HttpRequestProcessorConfig(
            url=emu.base_url + "/v1/messages",
            headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
            qps=RPM // 60 // 4,
            concurrency=4,
            batch_size=128,
            max_retries=3,
        )

        def preprocess(row: dict[str, Any]) -> dict[str, Any]:
            content = row["body"] and f"Summarise: {row['body']}"
            return {
                "payload": {
                    "model": "claude-haiku-4-5",
                    "max_tokens": 32,
                    "messages": [{"role": "user", "content": content}],
                }
            }

        def postprocess(row: dict[str, Any]) -> dict[str, Any]:
            response = row["http_response"]
            content = response.get("content") or [{}]
            return {"text": content[0].get("text"), "error": json.dumps(response.get("error")) or None}

        processor = build_processor(config, preprocess=preprocess, postprocess=postprocess)
        started = time.monotonic()
        failed = None
        out: list[dict[str, Any]] = []
        try:
            out = processor(ray.data.from_items(_rows(n))).take_all()
        except Exception as exc:  # the whole job fails on a row that ran out of retries
            failed = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        wall = time.monotonic() - started
        status = {int(k): v for k, v in emu.stats()["status"].items()}
    return {
        "system": "ray.data.llm HTTP processor",
        "rows": n,
        "answered": sum(1 for r in out if r.get("text")),
        "errored_rows": None,
        "failed": failed,
        "wall": wall,
        "ok": status.get(200, 0),
        "429": status.get(429, 0),
        "sent": sum(status.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--peer-rows", type=int, default=2_000)
    args = parser.parse_args()
    import ray

    env = {"ANTHROPIC_API_KEY": KEY, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
    try:
        with redis_server() as (url, _):
            results = [ours(ray, args.rows, url), peer(ray, args.peer_rows)]
    finally:
        ray.shutdown()
    print(json.dumps(results), file=sys.stderr)
    print(
        f"Command: `python -m bench.ray_data --rows {args.rows} --peer-rows {args.peer_rows}`. Local Ray cluster "
        f"(4 logical CPUs on a 2-core machine shared with other jobs), emulator at {RPM:,} RPM (the ceiling is "
        f"{RPM / 60:.0f} completions/s), 0.3 s to first token, rows {list(BAD)} without a body.\n"
    )
    print("| system | rows | answered | rows with `error` | job failed | 429s (share of requests) | wall s | rows/s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        share = r["429"] / max(1, r["sent"])
        print(
            f"| {r['system']} | {r['rows']:,} | {r['answered']:,} | {r['errored_rows']} | {r['failed'] or 'no'} | "
            f"{r['429']} ({share:.1%}) | {r['wall']:.0f} | {r['rows'] / r['wall']:.1f} |"
        )


if __name__ == "__main__":
    main()
