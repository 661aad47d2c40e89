"""Run one system on one workload in this (child) process and write its outcomes and resource usage as JSON.

Usage: python -m bench.child SPEC.json OUT.json. Running each system in its own process keeps their CPU time,
memory and event loops apart, and lets a peer that needs other library versions run in another environment.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from sluicegate.demo.run import capped

# LiteLLM would otherwise fetch its price map from the internet on import; the bench talks to loopback only.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def _load_docs(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _runner(system: str) -> Any:
    if system in ("langchain", "litellm", "bare_loop", "sdk_dropin", "sluicegate_sync"):
        from bench import systems

        return getattr(systems, f"run_{system}")
    if system.startswith("sluicegate"):
        from sluicegate.demo.ours import run_sluicegate

        return run_sluicegate
    from sluicegate.demo.peers import PEERS

    return PEERS[system][1]


def main(spec_path: str, out_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    docs = _load_docs(spec["docs"])
    system: str = spec["system"]
    from sluicegate.demo.peers import Recorder

    samples: list[tuple[float, int, int]] = []
    kwargs: dict[str, Any] = {
        "base_url": spec["base_url"],
        "api_key": spec["api_key"],
        "time_scale": spec["time_scale"],
        "real_limits": spec["real_limits"],
        "concurrency_hint": spec.get("concurrency", 32),
        "request_timeout": spec.get("request_timeout", 60.0),
    }
    if system in ("sluicegate_given", "sluicegate_sync"):
        kwargs["limits"] = tuple(spec["limits"])
    if system.startswith("sluicegate") and system != "sluicegate_sync":
        kwargs["samples"] = samples
    if system.startswith("sluicegate") or system == "sdk_dropin":
        # No `minute`: the engine learns each limit's window from the emulator's headers, as against any server.
        # The output accounting is the account's documented configuration, not something to learn.
        kwargs["output_accounting"] = spec.get("output_accounting", "produced")
    if (system.startswith("sluicegate") or system == "sdk_dropin") and spec.get("max_concurrency"):
        kwargs["max_concurrency"] = spec["max_concurrency"]
    fn = _runner(system)
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    rec = Recorder()
    status = "done"
    try:
        if system == "sequential":
            fn(docs, rec, deadline=rec.started + spec["cap"], **kwargs)
            if len(rec.outcomes) < len(docs):
                status = "timed out"
        elif system == "sluicegate_sync":  # runs its own loop, as plain code calling it does
            fn(docs, rec, **kwargs)
        else:
            status = asyncio.run(capped(fn(docs, rec, **kwargs), spec["cap"]))
    except Exception as exc:
        status = f"crashed: {type(exc).__name__}: {exc}"[:300]
        traceback.print_exc()
    wall = time.monotonic() - rec.started
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    out = {
        "status": status,
        "wall": wall,
        "cpu": (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime),
        "maxrss_kb": usage1.ru_maxrss,
        "outcomes": [[o.custom_id, o.text, o.error, o.attempts, o.at] for o in rec.outcomes.values()],
        "samples": samples,
    }
    Path(out_path).write_text(json.dumps(out), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
