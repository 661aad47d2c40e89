"""The attempt policy on the wire: what the server sees during the faults scenario's all-529 window, and how fast
a run to a port that refuses every connection stops. Prints one JSON line per measurement.

    python -m bench.attempt_policy overload --system engine   # the Engine over the faults workload
    python -m bench.attempt_policy overload --system sdk      # the SDK drop-in (asyncio.gather) over the same
    python -m bench.attempt_policy refused                    # Engine.map of 20 items to a closed port

The emulator's fault window is counted from its start; the figures come from the emulator's own log of arrivals
and answers (`bench/overload.py` defines them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import time
from typing import Any

import anthropic
import httpx2

from bench.overload import after_window, overload_window
from bench.runner import answer_latency, ideal_wall
from bench.scenarios import SCENARIOS
from sluicegate import Engine
from sluicegate.demo.workload import average_input_tokens, make_documents
from sluicegate.emulator import run_emulator
from sluicegate.integrations import LimitedTransport

_PARAMS: dict[str, Any] = {
    "model": "claude-haiku-4-5",
    "max_tokens": 8,
    "messages": [{"role": "user", "content": "hi"}],
}


class _Recording(httpx2.AsyncBaseTransport):
    """The real transport, logging (seconds since `t0`, status; 0 for no response) for every request."""

    def __init__(self, t0: float) -> None:
        self._inner = httpx2.AsyncHTTPTransport()
        self._t0 = t0
        self.log: list[tuple[float, int]] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            response = await self._inner.handle_async_request(request)
        except Exception:
            self.log.append((time.monotonic() - self._t0, 0))
            raise
        self.log.append((time.monotonic() - self._t0, response.status_code))
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


async def _engine(docs: list[dict[str, Any]], base_url: str, minute: float, rec: _Recording) -> int:
    async with Engine(api_key="bench-key", base_url=base_url, minute=minute, transport=rec) as engine:
        return sum(r.ok for r in await engine.map(docs))


async def _sdk(docs: list[dict[str, Any]], base_url: str, minute: float, rec: _Recording) -> int:
    transport = LimitedTransport(minute=minute, transport=rec)
    client = anthropic.AsyncAnthropic(
        api_key="bench-key", base_url=base_url, max_retries=0, http_client=httpx2.AsyncClient(transport=transport)
    )

    async def one(params: dict[str, Any]) -> int:
        try:
            await client.messages.create(**params)
        except anthropic.APIError:
            return 0
        return 1

    async with client:
        return sum(await asyncio.gather(*(one(p) for p in docs)))


def overload(system: str) -> dict[str, Any]:
    """The faults scenario (full size) through one system; the window is [10, 20) s of the emulator's clock."""
    scenario = SCENARIOS["faults"]
    docs = [{k: v for k, v in d.items() if k != "custom_id"} for d in make_documents(scenario.documents, seed=1)]
    config = scenario.emulator(False, 1)
    window = overload_window(config.faults)
    assert window is not None
    with run_emulator(config) as emu:
        t0 = time.monotonic()
        rec = _Recording(t0)
        run = _engine if system == "engine" else _sdk
        ok = asyncio.run(run(docs, emu.base_url, scenario.minute, rec))
        stats = emu.stats()
    status = {int(k): int(v) for k, v in stats["status"].items()}
    avg_out = stats["output_tokens"] / max(1, status.get(200, 0))
    avg_in = average_input_tokens(docs)
    _, ceiling = ideal_wall(scenario, len(docs), avg_in, avg_out)
    figures = after_window(
        window,
        stats,
        documents=len(docs),
        limits=(scenario.rpm, scenario.itpm, scenario.otpm),
        minute=scenario.minute,
        cost=(1.0, avg_in, avg_out),
        latency=answer_latency(scenario, avg_out),
        ceiling_per_s=ceiling,
    )
    return {
        "system": system,
        "ok": ok,
        "requests": len(rec.log),
        "non_200": sum(status.values()) - status.get(200, 0),
        **figures,
    }


def refused() -> dict[str, Any]:
    """Engine.map of 20 items to a closed port on 127.0.0.1 with the default retry policy."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def main() -> dict[str, Any]:
        async with Engine(api_key="bench-key", base_url=f"http://127.0.0.1:{port}") as engine:
            started = time.monotonic()
            results = await engine.map([_PARAMS] * 20)
            kinds: dict[str, int] = {}
            for r in results:
                kind = r.error.kind if r.error else "ok"
                kinds[kind] = kinds.get(kind, 0) + 1
            return {
                "seconds": round(time.monotonic() - started, 1),
                "attempts": engine.statistics().attempts,
                "kinds": kinds,
            }

    return asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.attempt_policy", description=__doc__)
    parser.add_argument("what", choices=("overload", "refused"))
    parser.add_argument("--system", choices=("engine", "sdk"), default="engine")
    args = parser.parse_args()
    print(json.dumps(overload(args.system) if args.what == "overload" else refused()))


if __name__ == "__main__":
    main()
