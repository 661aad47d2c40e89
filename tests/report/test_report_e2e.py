"""`sluicegate report` after a real job against the emulator (429s, 529s, bad lines, a binding limit, a resume),
checked in headless Chromium from the OS."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sluicegate.emulator import FaultSpec, RunningEmulator
from sluicegate.jobs.durable import store_path_for
from sluicegate.report.data import load
from sluicegate.report.figures import FIGURES

CHROMIUM = shutil.which("chromium")
ITEMS = 80


def _write_input(path: Path) -> None:
    lines = [json.dumps({"id": f"doc-{i}", "prompt": f"Summarise document {i}: " + "word " * 40}) for i in range(ITEMS)]
    lines.insert(10, "{not json")
    lines.insert(30, json.dumps({"id": "bad-params", "params": {"max_tokens": "many"}}))
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def finished_job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A job run to its end in two runs (the first interrupted by SIGINT) against an emulator with 60 RPM per 6 s
    minute, another client on the key as the resumed run starts (429s), 8% 529s and two bad input lines; returns its
    output path."""
    from contextlib import ExitStack

    from sluicegate.emulator import EmulatorConfig, run_emulator

    d = tmp_path_factory.mktemp("job")
    inp, out = d / "in.jsonl", d / "out.jsonl"
    _write_input(inp)
    config = EmulatorConfig(
        tier=1,
        rpm=60,
        minute=6.0,
        first_token_latency=0.3,
        per_token_latency=0.004,
        jitter=0.3,
        min_output_tokens=20,
        max_output_tokens=60,
        faults=(FaultSpec(kind="overloaded", probability=0.08),),
    )
    with ExitStack() as stack:
        emu: RunningEmulator = stack.enter_context(run_emulator(config))
        env = {**os.environ, "ANTHROPIC_BASE_URL": emu.base_url, "ANTHROPIC_API_KEY": "emulator"}
        cmd = [
            sys.executable,
            "-m",
            "sluicegate",
            "run",
            str(inp),
            "-o",
            str(out),
            "--quiet",
            "--model",
            "claude-haiku-4-5",
            "--max-tokens",
            "64",
            "--minute",
            "6",
        ]
        first = stack.enter_context(
            subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
        stack.callback(first.kill)  # only if the test fails before it ends
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < 15):
            time.sleep(0.05)
        first.send_signal(signal.SIGINT)
        _, first_err = first.communicate(timeout=60)
        assert first.returncode == 130, first_err
        join = _other_client(emu.base_url, store_path_for(out))  # the resumed run's first requests meet 429s
        second = stack.enter_context(
            subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
        stack.callback(second.kill)  # only if the test fails before it ends
        join()
        _, err = second.communicate(timeout=120)
        assert second.returncode == 1, err  # finished, with the two bad lines as errors
    return out


def _met_429(store: Path) -> bool:
    """Whether the job's timeline (as flushed so far) holds a 429."""
    if not store.exists():
        return False
    conn = sqlite3.connect(f"{store.as_uri()}?mode=ro", uri=True)
    try:
        return bool(conn.execute("SELECT count(*) FROM timeline WHERE data LIKE '%rate_limited%'").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return False
    finally:
        conn.close()


def _other_client(base_url: str, store: Path) -> Callable[[], None]:
    """Start another client on the same key: 16 threads taking every request the key's limit frees, until the job
    whose store is `store` has met a 429 (bounded: 2,000 requests, 60 s). Returns once the key's request bucket is
    empty (the client met its first 429), so a job started then meets 429s however well it paces itself, on a loaded
    machine too. Returns the join."""
    import threading

    import httpx2

    drained = threading.Event()
    done = threading.Event()
    started = time.monotonic()
    sent = [0]

    def hammer() -> None:
        with httpx2.Client(base_url=base_url, timeout=10) as client:
            while not done.is_set() and sent[0] < 2000 and time.monotonic() - started < 60:
                sent[0] += 1
                time.sleep(0.05)
                answer = client.post(
                    "/v1/messages",
                    headers={"x-api-key": "emulator", "anthropic-version": "2023-06-01"},
                    json={
                        "model": "claude-haiku-4-5",
                        "max_tokens": 8,
                        "messages": [{"role": "user", "content": "hi"}],
                    },
                )
                if answer.status_code == 429:
                    drained.set()

    def watch() -> None:
        while not done.is_set() and time.monotonic() - started < 60:
            if drained.is_set() and _met_429(store):
                done.set()
            time.sleep(0.2)
        done.set()

    threads = [threading.Thread(target=hammer) for _ in range(16)] + [threading.Thread(target=watch)]
    for t in threads:
        t.start()
    assert drained.wait(60), "the other client never emptied the key's request bucket"

    def join() -> None:
        for t in threads:
            t.join()

    return join


def _report(out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sluicegate", "report", str(out)], capture_output=True, text=True, timeout=120
    )


def test_report_explains_the_job_and_keeps_both_runs(finished_job: Path) -> None:
    """The report names RPM as the binding limit and its store data holds both runs, the 429s, 529s and bad lines."""
    done = _report(finished_job)
    assert done.returncode == 0, done.stderr
    assert "binding limit was requests per minute (RPM)" in done.stdout
    data = load(store_path_for(finished_job))
    assert len(data.segments) == 2
    rows = [p.row for p in data.points]
    assert sum(r.succeeded for r in rows) == ITEMS
    assert sum(r.rate_limited for r in rows) >= 1
    assert sum(r.overloaded for r in rows) >= 1
    (invalid,) = data.errors
    assert invalid.kind == "invalid_request_error"
    assert invalid.count == 2
    assert [line for line, _, _ in invalid.examples] == [11, 31]
    png = finished_job.with_name("out.report.png").read_bytes()
    assert png.startswith(b"\x89PNG")


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium from the OS packages")
def test_the_page_renders_in_chromium_with_every_plot_and_no_network(finished_job: Path) -> None:
    """Headless Chromium shows every plot (each image decoded), logs no console error and requests nothing."""
    from playwright.sync_api import sync_playwright

    assert _report(finished_job).returncode == 0
    page_path = finished_job.with_name("out.report.html")
    text = page_path.read_text()
    links = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", text)
    assert len(links) == len(FIGURES)
    assert all(link.startswith("data:") for link in links)
    assert "url(" not in text
    assert "@import" not in text
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_path.as_uri(), wait_until="load")
            for fig_id in FIGURES:
                width = page.eval_on_selector(f"#chart-{fig_id} img", "img => img.complete && img.naturalWidth")
                assert width > 100, fig_id
            why = page.inner_text("#why")
            assert "requests per minute" in why
            assert "invalid_request_error" in page.inner_text("#errors-table")
            page.screenshot(path=str(page_path.with_name("screenshot.png")), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert [u for u in requests if not u.startswith(("file://", "data:"))] == []
    assert requests[0] == page_path.as_uri()


def test_report_on_a_missing_job_says_so(tmp_path: Path) -> None:
    """A path with no job store beside it is a usage error (exit 2) that names the store."""
    done = _report(tmp_path / "nothing.jsonl")
    assert done.returncode == 2
    assert "no job store at" in done.stderr
    assert "nothing.jsonl.sluicegate.db" in done.stderr
