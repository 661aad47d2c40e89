"""Ray Data side by side: `sluicegate.ray.Requests` (4 actors, shared limiter) and Ray's own HTTP processor.

    python -m bench.ray_data --rows 20000 --time-limit 1800     # prints a Markdown section

Both systems get the same rows (`--peer-rows` defaults to `--rows`), one after the other on one local Ray cluster,
each against its own emulator with a 3,000 RPM limit (50 requests/s) and 0.3 s to first token; 3 rows have no
body. Each job is cut after `--time-limit` seconds and reports the rows it had delivered by then.

Ray's processor (`ray.data.llm.HttpRequestProcessorConfig`, aiohttp) gets the fastest settings its
documented fields allow (read from Ray 2.60's source, `ray/llm/_internal/batch/`):
- `concurrency=(4, 4)`: a fixed pool of 4 actors, as ours; an int n is an autoscaling pool from 1 to n.
- `qps=None`: the stage sleeps for `qps` before creating each request, but aiohttp only sends a request when it
  is awaited, and the stage awaits them one at a time after the sleeps; so `qps` only delays each batch by
  batch_size/qps seconds. Unpaced, a batch still sends one request at a time.
- `batch_size=16`: the processor has no per-actor concurrency field (its stage config forbids extra fields), but
  Ray Data runs up to 4 batches of an async UDF at once within one task (`RAY_DATA_DEFAULT_ASYNC_BATCH_UDF_MAX_
  CONCURRENCY`), over the batches of the task's block; `from_items` cuts 20,000 rows into blocks of 100, so
  16-row batches give 4 batches at once per actor, 16 requests in flight in all.
- `max_retries=3`: with the default 0, the first 429 or 5xx fails the whole job.
The cluster has 6 logical CPUs so the processor's postprocess stage has a CPU beside its 4 actors; with 4 it
waits until every request is answered, and a job cut by time would deliver nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from bench.shared_limits import redis_server
from sluicegate.emulator import EmulatorConfig, RunningEmulator, run_emulator

KEY = "bench-ray-key"
RPM = 3000
BAD = (17, 4242, 9999)
CPUS = 6
POLL = 0.5  # seconds between looks at the emulator's counters


def _rows(n: int) -> list[dict[str, Any]]:
    return [{"n": i, "body": None if i in BAD else f"ticket {i}: the lift is stuck again"} for i in range(n)]


def _config() -> EmulatorConfig:
    return EmulatorConfig(rpm=RPM, itpm=10_000_000, otpm=10_000_000, minute=60.0, first_token_latency=0.3, seed=3)


class _Watch:
    """Polls the emulator in a thread: when the first request reached it (the end of the actors' start-up)."""

    def __init__(self, emu: RunningEmulator, started: float) -> None:
        self._emu = emu
        self._started = started
        self._stop = threading.Event()
        self.first_request: float | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while self.first_request is None and not self._stop.wait(POLL):
            stats = self._emu.stats()
            if stats["in_flight"] or sum(stats["status"].values()):
                self.first_request = time.monotonic() - self._started

    def stop(self) -> dict[int, int]:
        self._stop.set()
        self._thread.join(10)
        return {int(k): v for k, v in self._emu.stats()["status"].items()}


def _drain(ds: Any, limit: float, keep: Callable[[dict[str, Any]], None]) -> tuple[bool, str | None]:
    """Read the dataset's output for at most `limit` seconds; (cut by time, the job's error)."""
    stop = threading.Event()
    failed: list[str] = []

    def read() -> None:
        try:
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                keep(batch)
                if stop.is_set():
                    return  # leaving the iterator stops the job's execution
        except Exception as exc:  # Ray's processor fails the whole job on a row that ran out of retries
            failed.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}")

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(limit)
    cut = reader.is_alive()
    stop.set()
    return cut, failed[0] if failed else None


@contextmanager
def _job(name: str, n: int) -> Iterator[tuple[RunningEmulator, dict[str, Any]]]:
    """One system's run: its emulator, and the result record filled in as the job goes."""
    result: dict[str, Any] = {"system": name, "rows": n, "out": 0, "answered": 0, "errored": []}
    with run_emulator(_config()) as emu:
        result["started"] = time.monotonic()
        watch = _Watch(emu, result["started"])
        try:
            yield emu, result
        finally:
            result["wall"] = time.monotonic() - result["started"]
            result["status"] = watch.stop()
            result["startup"] = watch.first_request


def _keeper(result: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    def keep(batch: dict[str, Any]) -> None:
        # An empty error comes back from Arrow as None or NaN; a set one is always a string.
        result["out"] += len(batch["n"])
        result["answered"] += sum(1 for t in batch["text"] if t)
        result["errored"] += [int(i) for i, e in zip(batch["n"], batch["error"], strict=True) if isinstance(e, str)]

    return keep


def ours(ray: Any, n: int, redis_url: str, limit: float) -> dict[str, Any]:
    from sluicegate.ray import Requests

    with _job("sluicegate.ray.Requests", n) as (emu, result):
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
        result["cut"], result["failed"] = _drain(ds.select_columns(["n", "text", "error"]), limit, _keeper(result))
    return result


def _preprocess(row: dict[str, Any]) -> dict[str, Any]:
    content = row["body"] and f"Summarise: {row['body']}"
    payload = {"model": "claude-haiku-4-5", "max_tokens": 32, "messages": [{"role": "user", "content": content}]}
    return {"payload": payload}


def _postprocess(row: dict[str, Any]) -> dict[str, Any]:
    # The processor hands back the API's body, a 400's included; turning it into an error column is the user's.
    response = row["http_response"]
    content = response.get("content") or [{}]
    error = response.get("error")
    return {"n": row["n"], "text": content[0].get("text"), "error": json.dumps(error) if error else None}


def peer(ray: Any, n: int, limit: float) -> dict[str, Any]:
    from ray.data.llm import HttpRequestProcessorConfig, build_processor

    with _job("ray.data.llm HTTP processor", n) as (emu, result):
        config = HttpRequestProcessorConfig(
            url=emu.base_url + "/v1/messages",
            headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
            concurrency=(4, 4),
            batch_size=16,
            qps=None,
            max_retries=3,
        )
        processor = build_processor(config, preprocess=_preprocess, postprocess=_postprocess)
        result["cut"], result["failed"] = _drain(processor(ray.data.from_items(_rows(n))), limit, _keeper(result))
    return result


def _table(results: list[dict[str, Any]]) -> None:
    print(
        "| system | rows | rows out | answered | rows with `error` | job failed | cut by time | 429s (share of "
        "requests) | wall s | start-up s | rows/s | rows/s after start-up |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        sent = sum(r["status"].values())
        limited = r["status"].get(429, 0)
        startup = r["startup"] or 0.0
        errored = r["errored"] if len(r["errored"]) <= 5 else f"{len(r['errored'])} rows"
        print(
            f"| {r['system']} | {r['rows']:,} | {r['out']:,} | {r['answered']:,} | {errored} | {r['failed'] or 'no'} "
            f"| {'yes' if r['cut'] else 'no'} | {limited} ({limited / max(1, sent):.1%}) | {r['wall']:.0f} | "
            f"{startup:.1f} | {r['out'] / r['wall']:.1f} | {r['out'] / max(1e-9, r['wall'] - startup):.1f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--peer-rows", type=int, default=None, help="rows for Ray's processor (default: --rows)")
    parser.add_argument("--time-limit", type=float, default=1800.0, help="seconds each job may run before its cut")
    args = parser.parse_args()
    peer_rows = args.rows if args.peer_rows is None else args.peer_rows
    import ray

    env = {"ANTHROPIC_API_KEY": KEY, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    began = time.monotonic()
    ray.init(num_cpus=CPUS, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
    cluster = time.monotonic() - began
    try:
        with redis_server() as (url, _):
            results = [ours(ray, args.rows, url, args.time_limit), peer(ray, peer_rows, args.time_limit)]
    finally:
        ray.shutdown()
    print(json.dumps(results), file=sys.stderr)
    print(
        f"Command: `python -m bench.ray_data --rows {args.rows} --peer-rows {peer_rows} --time-limit "
        f"{args.time_limit:.0f}`. Local Ray cluster ({CPUS} logical CPUs), started in {cluster:.1f} s; emulator at "
        f"{RPM:,} RPM (the ceiling is {RPM / 60:.0f} completions/s), 0.3 s to first token, rows {list(BAD)} "
        "without a body. Start-up is from the job's start to the first request reaching the emulator (actors "
        "created and the first batch handed to them).\n"
    )
    _table(results)


if __name__ == "__main__":
    main()
