"""python -m bench [scenario ...] [--repeats N] [--quick] [--setup]: run the benchmark and write bench/RESULTS.md."""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from bench import env
from bench.scenarios import ALL_SCENARIOS, SCENARIOS, with_minute

RUNS = env.ROOT / "bench" / "out" / "runs.json"
LAST = env.ROOT / "bench" / "out" / "last.json"


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("scenarios", nargs="*", help=f"default: all of {', '.join(ALL_SCENARIOS)}")
    parser.add_argument("--repeats", type=int, default=3, help="runs per system; the median is reported [3]")
    parser.add_argument("--quick", action="store_true", help="smaller workloads (minutes instead of an hour)")
    parser.add_argument("--setup", action="store_true", help="(re)create the bench virtualenv, then exit")
    parser.add_argument("--systems", default="", help="comma-separated subset of systems to run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--minute",
        type=float,
        help="real seconds per emulated minute for every chosen scenario (a variant named <scenario>_minute<N>s)",
    )
    parser.add_argument("--documents", type=int, help="documents per chosen scenario (a variant, as --minute)")
    parser.add_argument(
        "--busy",
        type=int,
        default=0,
        help="busy-loop processes run alongside (a loaded, shared machine: answers are read late) [0]",
    )
    parser.add_argument(
        "--headers-at-admission",
        action="store_true",
        help="the emulator counts each answer's rate-limit headers at the request's admission, not its end "
        "(a variant named <scenario>_admission)",
    )
    parser.add_argument("--report-only", action="store_true", help="rebuild RESULTS.md from the last run's data")
    parser.add_argument(
        "--merge", action="store_true", help="keep the last run's other scenarios (this run replaces its own)"
    )
    args = parser.parse_args(argv)
    unknown = [s for s in args.scenarios if s not in ALL_SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; choose from {', '.join(ALL_SCENARIOS)}")
    if not 1 <= args.repeats <= 10:
        parser.error("--repeats must be between 1 and 10")
    if args.minute is not None and not 0.5 <= args.minute <= 3600:
        parser.error("--minute must be between 0.5 and 3600 seconds")
    if not 0 <= args.busy <= 8:
        parser.error("--busy must be between 0 and 8")
    if args.documents is not None and args.documents < 1:
        parser.error("--documents must be 1 or more")
    return args


def _commands(saved: dict[str, Any]) -> list[dict[str, str]]:
    """The commands whose runs a saved result holds, oldest first (older files kept one merged string)."""
    if "commands" in saved:
        return list(saved["commands"])
    return [{"date": saved["date"], "command": saved["command"]}]


def main(argv: list[str]) -> int:
    args = _parse(argv)
    if args.setup:
        notes = env.setup()
        print("bench: setup done" + (f"; problems: {notes}" if notes else ""))
        return 0
    env.ensure(argv)  # re-executes inside the bench virtualenv when not already there

    from bench import report
    from bench.runner import load

    unavailable = env.unavailable_peers()
    if args.report_only:
        saved = json.loads(LAST.read_text(encoding="utf-8"))
        report.write(
            load(RUNS),
            commands=_commands(saved),
            quick=saved["quick"],
            repeats=saved["repeats"],
            versions=env.versions(),
            unavailable=saved["unavailable"],
            extra_sections=saved["extra"],
        )
        print("bench: rebuilt bench/RESULTS.md from the last run")
        return 0
    with _busy(args.busy):
        return _run(args, argv, unavailable)


@contextlib.contextmanager
def _busy(n: int) -> Iterator[None]:
    """`n` processes spinning on the CPU while the benchmark runs; stopped (and waited for) however it ends."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for proc in spinners:
            proc.kill()
            proc.wait()


def _run(args: argparse.Namespace, argv: list[str], unavailable: dict[str, str]) -> int:
    from bench import report
    from bench.cli_runs import cli_sections
    from bench.runner import Run, load, run_scenario, save

    started = time.monotonic()
    chosen = args.scenarios or list(ALL_SCENARIOS)
    only = {s for s in args.systems.split(",") if s}
    results: dict[str, dict[str, list[Run]]] = {}
    for name in chosen:
        scenario = SCENARIOS.get(name)
        if scenario is None:
            continue
        if name != "overhead":
            scenario = with_minute(
                scenario, args.minute, args.documents, counted_at_admission=args.headers_at_admission
            )
        systems = [s for s in scenario.systems if not only or s in only]
        print(f"bench: {name} ({len(systems)} systems x {args.repeats})", flush=True)
        groups: dict[str, list[Run]] = {s: [] for s in systems}
        for repeat in range(args.repeats):
            for run in run_scenario(
                scenario,
                systems,
                quick=args.quick,
                seed=args.seed + repeat,
                python_for={},
                unavailable=unavailable,
            ):
                groups[run.system].append(run)
        results[scenario.name] = groups
    extra = cli_sections([n for n in chosen if n in ("memory", "resume")], quick=args.quick, repeats=args.repeats)
    command = ("python -m bench " + shlex.join(argv) if argv else "python -m bench").strip()
    commands = [{"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "command": command}]
    if args.merge and RUNS.exists() and LAST.exists():
        previous = json.loads(LAST.read_text(encoding="utf-8"))
        old = load(RUNS)
        results = {name: results.get(name, groups) for name, groups in old.items()} | results
        extra = extra or previous["extra"]
        commands = _commands(previous) + commands
    save(results, RUNS)
    meta = {"commands": commands, "quick": args.quick, "repeats": args.repeats}
    LAST.write_text(json.dumps({**meta, "unavailable": unavailable, "extra": extra}), encoding="utf-8")
    report.write(
        results,
        commands=commands,
        quick=args.quick,
        repeats=args.repeats,
        versions=env.versions(),
        unavailable=unavailable,
        extra_sections=extra,
    )
    print(f"bench: wrote bench/RESULTS.md in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
