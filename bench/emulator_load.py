"""Emulator throughput: simple responses per second and open connections held, with a raw-socket load generator.

`python -m bench.emulator_load [--connections 100 1000] [--seconds 10]`

The emulator runs in its own process (`sluicegate emulate`, limits far above the load) so it has a core to
itself; the load generator speaks HTTP/1.1 keep-alive over plain asyncio streams (tens of microseconds per
request, far cheaper than an HTTP client library), so the emulator, not the generator, is what is measured.
Prints a Markdown section for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass

_BODY = json.dumps(
    {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "ping"}]}
).encode()


@dataclass
class LoadResult:
    connections: int
    opened: int
    seconds: float
    ok: int
    other: int
    errors: int

    @property
    def per_second(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


def _request(port: int) -> bytes:
    head = (
        f"POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
        f"x-api-key: bench\r\nanthropic-version: 2023-06-01\r\ncontent-length: {len(_BODY)}\r\n\r\n"
    )
    return head.encode() + _BODY


async def _client(port: int, state: dict[str, float], counts: dict[str, int], go: asyncio.Event) -> None:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 30)
    except (OSError, TimeoutError):
        counts["errors"] += 1
        return
    counts["opened"] += 1
    await go.wait()
    request = _request(port)
    try:
        while time.monotonic() < state["stop_at"]:
            writer.write(request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            match = re.search(rb"content-length:\s*(\d+)", head, re.IGNORECASE)
            if match is None:
                counts["errors"] += 1
                return
            await reader.readexactly(int(match.group(1)))
            counts["ok" if head.startswith(b"HTTP/1.1 200") else "other"] += 1
    except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        counts["errors"] += 1
    finally:
        writer.close()


async def _load(port: int, connections: int, seconds: float) -> LoadResult:
    """Open every connection first, then let all of them send back-to-back requests for `seconds`."""
    counts = {"ok": 0, "other": 0, "errors": 0, "opened": 0}
    state = {"stop_at": float("inf")}
    go = asyncio.Event()
    tasks = [asyncio.create_task(_client(port, state, counts, go)) for _ in range(connections)]
    deadline = time.monotonic() + 60
    while counts["opened"] + counts["errors"] < connections and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)  # polling a counter is simpler than an event per connection here
    opened = counts["opened"]
    start = time.monotonic()
    state["stop_at"] = start + seconds
    go.set()
    await asyncio.wait(tasks, timeout=seconds + 60)
    for task in tasks:
        task.cancel()
    elapsed = time.monotonic() - start
    return LoadResult(connections, opened, elapsed, counts["ok"], counts["other"], counts["errors"])


def _start_emulator() -> tuple[subprocess.Popen[str], int]:
    big = str(10**9)
    cmd = [sys.executable, "-m", "sluicegate", "emulate", "--port", "0", "--rpm", big, "--itpm", big, "--otpm", big]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    if match is None:
        proc.kill()
        raise RuntimeError(f"the emulator did not start: {line!r}")
    return proc, int(match.group(1))


def _raise_fd_limit(wanted: int) -> None:
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    except (ImportError, ValueError, OSError):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.emulator_load", description=__doc__)
    parser.add_argument("--connections", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    _raise_fd_limit(4 * max(args.connections) + 256)
    proc, port = _start_emulator()
    try:
        results = [asyncio.run(_load(port, n, args.seconds)) for n in args.connections]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(
        f"## emulator_throughput\n\n{when}; {os.cpu_count()} cores, {platform.system()} {platform.machine()}; "
        f"command: `python -m bench.emulator_load --connections {' '.join(map(str, args.connections))} "
        f"--seconds {args.seconds:g}`. The emulator runs in its own process (zero latency, limits far above the "
        "load); a raw-socket keep-alive load generator in another. Goal: >= 2,000 simple responses/s and "
        "1,000 open connections.\n"
    )
    print("| connections | opened | seconds | 200s | responses/s | other statuses | errors |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        row = (r.connections, r.opened, f"{r.seconds:.1f}", r.ok, f"{r.per_second:,.0f}", r.other, r.errors)
        print("| " + " | ".join(map(str, row)) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
