"""bench/RESULTS.md and the PNG plots, from the runs of one benchmark invocation."""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.runner import Run
from bench.scenarios import scenario_named

HERE = Path(__file__).resolve().parent


def median_run(runs: Sequence[Run]) -> Run:
    """The repeat with the median wall time (an actual run, so its counts stay consistent)."""
    done = sorted(runs, key=lambda r: r.wall)
    return done[(len(done) - 1) // 2]


def _row(run: Run, n: int, repeats: Sequence[Run]) -> str:
    if run.status.startswith("not run"):
        return f"| {run.system} | {run.status} | | | | | | | | | | |"
    walls = sorted(r.wall for r in repeats)
    spread = f" ({walls[0]:.1f}–{walls[-1]:.1f})" if len(walls) > 1 else ""
    lost = n - run.ok - run.failed - run.wrong
    return (
        f"| {run.system} | {run.status} | {run.wall:.1f}{spread} | {run.per_second:.1f} | {run.utilization:.2f} | "
        f"{run.utilization_with_latency:.2f} | {_fmt(run.steady_utilization)} | "
        f"{run.rate_limited} ({100 * run.rate_limited / max(1, run.requests):.0f}%) | {run.other_errors} | "
        f"{run.failed} | {lost} | {run.wrong} |"
    )


def _fmt(value: float) -> str:
    return f"{value:.2f}" if value > 0 else "-"


def _throughput_table(name: str, groups: Mapping[str, list[Run]], n: int) -> list[str]:
    lines = [
        "| system | status | wall s (range) | done/s | utilization | util. +latency | steady util. "
        "| 429s (% of requests) | other HTTP errors | failed | lost | wrong |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for runs in groups.values():
        lines.append(_row(median_run(runs), n, runs))
    ran = [runs[0] for runs in groups.values() if runs[0].ideal_all > 0]
    if ran:
        lines.append("")
        lines.append(
            f"Ceiling: {ran[0].ceiling_per_s:.1f} completions per real second in steady state; a perfect client "
            f"needs {ran[0].ideal_all:.1f} s plus one answer's latency for the {n} requests (the buckets start full)."
        )
    reserved = [median_run(runs) for runs in groups.values() if median_run(runs).ideal_reserved > 0]
    if reserved:
        lines += _reserved_table(reserved)
    return lines


def _reserved_table(runs: Sequence[Run]) -> list[str]:
    """Utilization against the perfect client under the emulator's reserved output accounting (`reserved.py`)."""
    lines = [
        "",
        "The perfect client above is charged the output tokens it produced; this server reserves `max_tokens` at "
        "admission and refunds the rest at each answer's end, which bounds even a perfect client's requests in "
        "flight. Against a perfect client under that same accounting (`bench/reserved.py`: average output and "
        "latency per answer, each request sent the moment the bucket holds `max_tokens`), for what each completed:",
        "",
        "| system | perfect client (reserved) s | utilization (reserved) | util. +latency (reserved) |",
        "|---|---|---|---|",
    ]
    for run in runs:
        strict, with_latency = run.utilization_reserved
        lines.append(f"| {run.system} | {run.ideal_reserved:.1f} | {strict:.2f} | {with_latency:.2f} |")
    return lines


def _overload_table(groups: Mapping[str, list[Run]]) -> list[str]:
    """Per system, the recovery from the all-529 window (bench.overload), median and range over the repeats."""
    measured = {system: [r.overload for r in runs if r.overload] for system, runs in groups.items()}
    measured = {system: figures for system, figures in measured.items() if figures}
    if not measured:
        return []
    lines = [
        "",
        "The all-529 window, from the emulator's own log (`bench/overload.py`): requests it saw during the window, "
        "and from the window's end to the first success, to the steady rate and to the last answer; *of best* = "
        "what a perfect client needs for the documents not done at the window's end (buckets full then) / the time "
        "this system took after the window (with one answer's latency added to the perfect client's time). "
        "Medians over the repeats, range in brackets.",
        "",
        "| system | requests in window (per second) | first 200 after, s | steady rate after, s | "
        "last answer after, s | perfect client, s | of best | of best (+latency) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for system, figures in measured.items():
        mid = sorted(figures, key=lambda f: f.get("end_s") or 0.0)[(len(figures) - 1) // 2]
        per = ", ".join(str(x) for x in mid["window_per_second"])
        lines.append(
            f"| {system} | {_spread(figures, 'window_requests', 0)} ({per}) | {_spread(figures, 'first_ok_s', 2)} | "
            f"{_spread(figures, 'steady_s', 2)} | {_spread(figures, 'end_s', 1)} | {_spread(figures, 'best_s', 1)} | "
            f"{_spread(figures, 'of_best', 2)} | {_spread(figures, 'of_best_latency', 2)} |"
        )
    return lines


def _spread(figures: Sequence[Mapping[str, Any]], key: str, digits: int) -> str:
    values = sorted(float(f[key]) for f in figures if f.get(key) is not None)
    if not values:
        return "-"
    mid = statistics.median(values)
    if len(values) == 1 or values[0] == values[-1]:
        return f"{mid:.{digits}f}"
    return f"{mid:.{digits}f} ({values[0]:.{digits}f}–{values[-1]:.{digits}f})"


def _overhead_table(groups: Mapping[str, list[Run]]) -> list[str]:
    lines = [
        "| system | status | requests ok | CPU s | CPU µs per request | vs bare loop | vs sync loop |",
        "|---|---|---|---|---|---|---|",
    ]
    bases = [_per_request(groups.get(name)) for name in ("bare_loop", "sequential")]
    for system, runs in groups.items():
        per = [r.cpu / r.ok for r in runs if r.ok]
        if not per:
            lines.append(f"| {system} | {runs[0].status} | 0 | | | | |")
            continue
        med = statistics.median(per)
        ratios = " | ".join(f"{med / base:.2f}x" if base else "-" for base in bases)
        ok = median_run(runs).ok
        cpu = statistics.median(r.cpu for r in runs)
        lines.append(f"| {system} | {runs[0].status} | {ok} | {cpu:.2f} | {med * 1e6:.0f} | {ratios} |")
    return lines


def _per_request(runs: list[Run] | None) -> float | None:
    """The median over runs of CPU seconds per successful request, as in the table (None when it did not run)."""
    per = [r.cpu / r.ok for r in runs or () if r.ok]
    return statistics.median(per) if per else None


def write(
    results: Mapping[str, Mapping[str, list[Run]]],
    *,
    commands: Sequence[Mapping[str, str]],
    quick: bool,
    repeats: int,
    versions: Mapping[str, str],
    unavailable: Mapping[str, str],
    extra_sections: Sequence[str] = (),
    path: Path = HERE / "RESULTS.md",
) -> None:
    """Write RESULTS.md with one table per scenario and the plots next to it.

    `commands` are the runs merged into these results, oldest first: a later run's scenarios replace an earlier's.
    """
    dates = [c["date"] for c in commands] or [datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")]
    span = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"
    lines = [
        "# sluicegate benchmark results",
        "",
        f"- Date: {span}" + (" — **quick run** (smaller workloads)" if quick else ""),
        f"- Machine: {os.cpu_count()} cores, {platform.system()} {platform.machine()}, Python {versions['python']}",
    ]
    if len(commands) == 1:
        lines.append(f"- Command: `{commands[0]['command']}`")
    else:
        lines.append(
            "- Commands, oldest first (each later one replaced the scenarios it ran; `--merge` kept the rest):"
        )
        lines += [f"  - {c['date']}: `{c['command']}`" for c in commands]
    lines += [
        f"- Repeats: {repeats} asked for by the last command; each section says how many it holds (tables show the "
        "repeat with the median wall time, range in brackets)",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if k != "python"),
        "",
        "The emulator runs on 127.0.0.1 in the benchmark's process and each system runs in its own child process,",
        "all on the same generated documents. Time is compressed (an emulated minute lasts a few real seconds);",
        "limits handed to wall-clock limiters (LangChain, LiteLLM) are scaled to the real minute; sluicegate is not",
        "told the emulated minute's length: it learns each limit's window from the headers (`sluicegate_given` is",
        "given the limits per window), and the scenario's output-token accounting. Backoff sleeps of the",
        "Semaphore(10) pattern are compressed by the same factor.",
        "*utilization* = time a perfect client needs for the documents this system completed (counting the full",
        "buckets at start) / wall time; *util. +latency* = the same with the perfect client also waiting one average",
        "answer's latency for its last answer (it cannot do better; strict *utilization* ignores it);",
        "*steady util.* = completion rate after the starting buckets are spent (up",
        "to the 90th percentile of completions) / the steady-state ceiling min(RPM, ITPM/avg input, OTPM/avg",
        "output) per second; '-' when too few completions came after the starting buckets to measure it.",
        "*lost* = documents with no outcome at all; *wrong* = an answer whose tag is not its own prompt's;",
        "*failed* = documents that ended in an error. 429s and other HTTP errors are counted by the emulator.",
        "",
    ]
    if unavailable:
        lines += ["## Peers that could not run", ""]
        lines += [f"- {peer}: {why}" for peer, why in unavailable.items()]
        lines.append("")
    for name, groups in results.items():
        scenario = scenario_named(name)
        if name == "overhead":
            lines += [f"## {name}", "", scenario.summary if scenario else "", "", *_overhead_table(groups), ""]
            continue
        if scenario is None:
            continue
        n = scenario.quick_documents if quick else scenario.documents
        count = max(len(runs) for runs in groups.values())
        lines += [f"## {name}", "", f"{scenario.summary}; {n} documents; {count} repeat(s).", ""]
        lines += _throughput_table(name, groups, n)
        lines += _overload_table(groups)
        png = plot(name, groups, path.parent / "plots")
        if png:
            lines += ["", f"![{name}](plots/{png})"]
        lines.append("")
    lines += list(extra_sections)
    # Sections measured by their own commands (bench.emulator_load, bench.job_memory) are kept as files, so a
    # regenerated RESULTS.md carries them along.
    for manual in sorted((HERE / "manual").glob("*.md")):
        lines += [manual.read_text(encoding="utf-8").rstrip(), ""]
    lines += goals(results)
    findings = HERE / "findings.md"
    if findings.exists():  # hand-written analysis of the dated run, kept beside the generated tables
        lines += ["", findings.read_text(encoding="utf-8")]
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")


def goals(results: Mapping[str, Mapping[str, list[Run]]]) -> list[str]:
    """The issue's goals for sluicegate, checked against this run's own figures."""
    lines = ["## sluicegate against its goals (this run)", ""]
    for name in ("rpm_bound", "itpm_bound", "otpm_bound"):
        for system in ("sluicegate_given", "sluicegate_learn"):
            runs = results.get(name, {}).get(system)
            if not runs or runs[0].status.startswith("not run"):
                continue
            r = median_run(runs)
            share = r.rate_limited / max(1, r.requests)
            met = r.steady_utilization >= 0.98 and share < 0.01
            lines.append(
                f"- {name}/{system}: steady utilization {r.steady_utilization:.3f} (goal >= 0.98), "
                f"utilization from a full bucket {r.utilization:.2f}, 429s {100 * share:.1f}% of requests "
                f"(goal < 1%): {'met' if met else 'NOT met'}"
            )
    for system in ("sluicegate_given", "sluicegate_learn"):
        runs = results.get("faults", {}).get(system)
        if runs and not runs[0].status.startswith("not run"):
            r = median_run(runs)
            lost = r.missing + r.wrong
            lines.append(
                f"- faults/{system}: {lost} lost or wrong, {r.failed} ended in error (goal: 0 lost): "
                f"{'met' if lost == 0 else 'NOT met'}"
            )
    over = results.get("overhead", {})
    # Issue 12's goal: at most 0.6x a bare SDK loop's CPU per request, the async loop and the sync one alike.
    for ours, base, label in (
        ("sluicegate_given", "bare_loop", "the bare AsyncAnthropic loop"),
        ("sluicegate_sync", "sequential", "the synchronous Anthropic loop"),
    ):
        mine, theirs = _per_request(over.get(ours)), _per_request(over.get(base))
        if mine and theirs:
            ratio = mine / theirs
            lines.append(
                f"- overhead: {ours} used {ratio:.2f}x the CPU per request of {label} (goal <= 0.6x): "
                f"{'met' if ratio <= 0.6 else 'NOT met'}"
            )
    lines.append("- memory and resume: see their sections above (goals: <= 150 MB and flat; re-sent <= in flight).")
    lines.append("")
    return lines


def plot(name: str, groups: Mapping[str, list[Run]], plots: Path) -> str | None:
    """completions over time, 429s per second, and sluicegate's concurrency; returns the PNG's file name."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    plots.mkdir(exist_ok=True)
    fig, axes = plt.subplots(3, 1, figsize=(9, 10), sharex=True)
    ax_done, ax_429, ax_conc = axes
    for system, runs in groups.items():
        run = median_run(runs)
        if run.status.startswith("not run"):
            continue
        times = run.completion_times
        ax_done.step(times, range(1, len(times) + 1), where="post", label=system)
        if run.rate_limited_timeline:
            xs, ys = zip(*run.rate_limited_timeline, strict=True)
            ax_429.plot(xs, ys, marker=".", label=system)
        if run.concurrency:
            cx: Any = [s[0] for s in run.concurrency]
            ax_conc.plot(cx, [s[1] for s in run.concurrency], label=f"{system} in flight")
            ax_conc.plot(cx, [s[2] for s in run.concurrency], linestyle="--", label=f"{system} limit")
    ax_done.set_ylabel("completed (cumulative)")
    ax_429.set_ylabel("429s per second")
    ax_conc.set_ylabel("sluicegate concurrency")
    ax_conc.set_xlabel("seconds since the system started")
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best")
    ax_done.set_title(name)
    fig.tight_layout()
    out = f"{name}.png"
    fig.savefig(plots / out, dpi=80)
    plt.close(fig)
    return out
