"""Parent side of a throughput scenario: one loopback emulator, each system in a child process, scored here."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.overload import after_window, overload_window
from bench.scenarios import Scenario
from sluicegate.demo.peers import Outcome
from sluicegate.demo.workload import average_input_tokens, make_documents, tally
from sluicegate.emulator import RunningEmulator, run_emulator

from .reserved import ideal_reserved

API_KEY = "bench-key"
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Run:
    """One system's run of one scenario: scores, rates and the timelines the plots need."""

    scenario: str
    system: str
    status: str
    wall: float
    ok: int
    failed: int
    wrong: int
    missing: int
    rate_limited: int  # 429s the emulator sent
    other_errors: int  # non-200, non-429 answers the emulator sent (faults included)
    requests: int
    cpu: float
    maxrss_kb: int
    ideal_wall: float  # time a perfect client needs given the limits and the full buckets at start
    ceiling_per_s: float  # steady-state ceiling min(RPM, ITPM/avg_in, OTPM/avg_out) per real second
    ideal_all: float = 0.0  # what a perfect client needs for every document
    start_capacity: float = 0.0  # requests the full buckets admit at once at the start
    answer_latency: float = 0.0  # real seconds of one average answer: what even a perfect client waits at the end
    # What a perfect client needs under the emulator's reserved output accounting (0: produced accounting)
    ideal_reserved: float = 0.0
    completion_times: list[float] = field(default_factory=list)
    rate_limited_timeline: list[tuple[int, int]] = field(default_factory=list)
    concurrency: list[tuple[float, int, int]] = field(default_factory=list)
    stderr_tail: str = ""
    overload: dict[str, Any] = field(default_factory=dict)  # bench.overload.after_window, for a fault window

    @property
    def per_second(self) -> float:
        return self.ok / self.wall if self.wall > 0 else 0.0

    @property
    def steady_utilization(self) -> float:
        """Completion rate once the starting buckets are spent (up to the 90th percentile), over the ceiling.

        0.0 when too few completions came after the starting buckets to measure a rate.
        """
        times = self.completion_times
        lo, hi = int(self.start_capacity) + 1, int(len(times) * 0.9)
        if hi - lo < 20 or self.ceiling_per_s <= 0:
            return 0.0
        span = times[hi] - times[lo]
        return (hi - lo) / span / self.ceiling_per_s if span > 0 else 0.0

    @property
    def utilization(self) -> float:
        """ideal_wall / wall: 1.0 means the run finished as fast as the limits allow."""
        return self.ideal_wall / self.wall if self.wall > 0 and self.ok else 0.0

    @property
    def utilization_with_latency(self) -> float:
        """(ideal_wall + one answer's latency) / wall: the perfect client also waits for its last answer."""
        return (self.ideal_wall + self.answer_latency) / self.wall if self.wall > 0 and self.ok else 0.0

    @property
    def utilization_reserved(self) -> tuple[float, float]:
        """(strict, +latency) utilization against the perfect client under reserved accounting (`reserved.py`)."""
        if self.ideal_reserved <= 0 or self.wall <= 0 or not self.ok:
            return 0.0, 0.0
        return self.ideal_reserved / self.wall, (self.ideal_reserved + self.answer_latency) / self.wall


def start_capacity(scenario: Scenario, avg_in: float, avg_out: float) -> float:
    """How many average requests the full buckets admit at once."""
    out_cost = scenario.max_tokens if scenario.output_accounting == "reserved" else avg_out
    return min(
        float(scenario.burst or scenario.rpm),
        scenario.itpm / max(avg_in, 1e-9),
        scenario.otpm / max(out_cost, 1e-9),
    )


def answer_latency(scenario: Scenario, avg_out: float) -> float:
    """Real seconds the emulator takes for an average answer: its mean first-token latency plus the tokens."""
    low, high = scenario.latency
    return ((low + high) / 2 + scenario.per_token * avg_out) * scenario.time_scale


def ideal_wall(scenario: Scenario, n: int, avg_in: float, avg_out: float) -> tuple[float, float]:
    """(seconds a perfect client needs, steady ceiling per real second), counting the full buckets at start."""
    minute = scenario.minute
    start_requests = float(scenario.burst or scenario.rpm)
    costs = [
        (n * 1.0, start_requests, scenario.rpm / minute),
        (n * avg_in, float(scenario.itpm), scenario.itpm / minute),
        (n * avg_out, float(scenario.otpm), scenario.otpm / minute),
    ]
    waits = [max(0.0, total - initial) / rate for total, initial, rate in costs]
    ceiling = min(scenario.rpm / minute, scenario.itpm / minute / max(avg_in, 1e-9))
    if avg_out > 0:
        ceiling = min(ceiling, scenario.otpm / minute / avg_out)
    return max(waits), ceiling


def run_child(spec: dict[str, Any], python: str, timeout: float) -> tuple[dict[str, Any] | None, str]:
    """Run `python -m bench.child` on `spec`; (its JSON output or None, the tail of its stderr)."""
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        spec_path, out_path = Path(tmp, "spec.json"), Path(tmp, "out.json")
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        try:
            proc = subprocess.run(
                [python, "-m", "bench.child", str(spec_path), str(out_path)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            err = proc.stderr[-2000:]
        except subprocess.TimeoutExpired as exc:
            err = f"killed after {timeout:.0f} s; {exc.stderr!r:.500}"
        if not out_path.exists():
            return None, err
        data: dict[str, Any] = json.loads(out_path.read_text(encoding="utf-8"))
        return data, err


def run_scenario(
    scenario: Scenario,
    systems: list[str],
    *,
    quick: bool,
    seed: int,
    python_for: dict[str, str],
    unavailable: dict[str, str],
    log: Any = print,
) -> list[Run]:
    """Every system of `scenario` on the same documents, each on freshly reset emulator state."""
    n = scenario.quick_documents if quick else scenario.documents
    docs = make_documents(n, seed=seed, words=scenario.words, max_tokens=scenario.max_tokens)
    avg_in = average_input_tokens(docs)
    cap = scenario.quick_cap if quick else scenario.cap
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench-docs-") as tmp:
        docs_path = Path(tmp, "docs.jsonl")
        docs_path.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
        for system in systems:
            if system in unavailable:
                log(f"  {scenario.name}/{system}: not run ({unavailable[system]})")
                runs.append(_not_run(scenario.name, system, unavailable[system]))
                continue
            # A fresh emulator per system: same seed, and fault windows and timelines start with the system.
            with run_emulator(scenario.emulator(quick, seed)) as emu:
                python = python_for.get(system, sys.executable)
                run = _one(scenario, system, docs, docs_path, emu, cap, avg_in, python)
            log(
                f"  {scenario.name}/{system}: {run.status}, {run.wall:.1f} s, ok {run.ok}/{n}, "
                f"429s {run.rate_limited}, util {run.utilization:.2f} (+latency {run.utilization_with_latency:.2f}), "
                f"steady {run.steady_utilization:.2f}"
            )
            if run.overload:
                log(f"    after the all-529 window: {json.dumps(run.overload)}")
            runs.append(run)
    return runs


def _one(
    scenario: Scenario,
    system: str,
    docs: list[dict[str, Any]],
    docs_path: Path,
    emu: RunningEmulator,
    cap: float,
    avg_in: float,
    python: str,
) -> Run:
    real = scenario.real_limits()
    spec = {
        "system": system,
        "docs": str(docs_path),
        "base_url": emu.base_url,
        "api_key": API_KEY,
        "time_scale": scenario.time_scale,
        "real_limits": real,
        "limits": [scenario.rpm, scenario.itpm, scenario.otpm],
        "minute": scenario.minute,
        "output_accounting": scenario.output_accounting,
        "cap": cap,
        "concurrency": scenario.concurrency,
        "max_concurrency": scenario.engine_max_concurrency,
        "request_timeout": 30.0,
    }
    started = time.monotonic()
    data, err = run_child(spec, python, timeout=cap + 60.0)
    stats = emu.stats()
    status_counts = {int(k): int(v) for k, v in stats["status"].items()}
    outcomes: dict[str, Outcome] = {}
    if data is not None:
        for cid, text, error, attempts, at in data["outcomes"]:
            outcomes[cid] = Outcome(cid, text, error, attempts, at)
    t = tally(docs, outcomes)
    avg_out = stats["output_tokens"] / max(1, status_counts.get(200, 0))
    # Judged on what it completed: a system that dropped documents is not credited for their time.
    ideal, ceiling = ideal_wall(scenario, t.ok, avg_in, avg_out)
    ideal_all, _ = ideal_wall(scenario, len(docs), avg_in, avg_out)
    latency = answer_latency(scenario, avg_out)
    window = overload_window(emu.state.config.faults)
    overload: dict[str, Any] = {}
    if window is not None:
        out_cost = scenario.max_tokens if scenario.output_accounting == "reserved" else avg_out
        overload = after_window(
            window,
            stats,
            documents=len(docs),
            limits=(scenario.rpm, scenario.itpm, scenario.otpm),
            minute=scenario.minute,
            cost=(1.0, avg_in, out_cost),
            latency=latency,
            ceiling_per_s=ceiling,
        )
    reserved = ideal_reserved(scenario, t.ok, avg_out, latency)
    return Run(
        scenario=scenario.name,
        system=system,
        status=data["status"] if data else f"child failed: {err.strip().splitlines()[-1:] or ['?']}"[:200],
        wall=data["wall"] if data else time.monotonic() - started,
        ok=t.ok,
        failed=t.failed,
        wrong=t.wrong,
        missing=t.missing,
        rate_limited=status_counts.get(429, 0),
        other_errors=sum(v for k, v in status_counts.items() if k not in (200, 429)),
        requests=sum(status_counts.values()),
        cpu=data["cpu"] if data else 0.0,
        maxrss_kb=data["maxrss_kb"] if data else 0,
        ideal_wall=ideal,
        ceiling_per_s=ceiling,
        ideal_all=ideal_all,
        start_capacity=start_capacity(scenario, avg_in, avg_out),
        answer_latency=latency,
        ideal_reserved=max(ideal, reserved) if reserved else 0.0,
        completion_times=sorted(o.at for o in outcomes.values() if o.text is not None),
        rate_limited_timeline=[(int(s["second"]), int(s["rate_limited"])) for s in stats["timeline"]],
        concurrency=[(float(a), int(b), int(c)) for a, b, c in data["samples"]] if data else [],
        stderr_tail=err[-600:],
        overload=overload,
    )


def save(results: dict[str, dict[str, list[Run]]], path: Path) -> None:
    """Every run's fields as JSON, so the report can be rebuilt without re-running."""
    data = {name: {system: [asdict(r) for r in runs] for system, runs in g.items()} for name, g in results.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def load(path: Path) -> dict[str, dict[str, list[Run]]]:
    """The runs written by `save`."""
    data = json.loads(path.read_text(encoding="utf-8"))
    out: dict[str, dict[str, list[Run]]] = {}
    for name, groups in data.items():
        out[name] = {}
        for system, runs in groups.items():
            loaded = []
            for r in runs:
                r["rate_limited_timeline"] = [tuple(x) for x in r["rate_limited_timeline"]]
                r["concurrency"] = [tuple(x) for x in r["concurrency"]]
                loaded.append(Run(**r))
            out[name][system] = loaded
    return out


def _not_run(scenario: str, system: str, why: str) -> Run:
    return Run(scenario, system, f"not run: {why}", 0.0, 0, 0, 0, 0, 0, 0, 0, 0.0, 0, 0.0, 0.0)
