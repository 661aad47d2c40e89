"""The dashboard in a real headless Chromium (the OS's, never a downloaded one): no console errors, live figures."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable

import anyio
import pytest

from sluicegate.demo.peers import Recorder, gather_all
from sluicegate.demo.workload import make_documents

from .conftest import RunningGateway

pytestmark = pytest.mark.e2e

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def test_dashboard_loads_clean_and_its_figures_move(gateway: Callable[..., RunningGateway]) -> None:
    """The page loads with no console errors, and its figures change while a job runs through the gateway."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("chromium is not installed (CI installs the OS package)")
    sync_api = pytest.importorskip("playwright.sync_api")
    gw = gateway(emulator={"tier": 1, "minute": 1.2, "first_token_latency": 0.2}, minute=1.2)
    problems: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.goto(gw.base_url + "/")
            page.wait_for_function("document.getElementById('updated').textContent.startsWith('live')")
            before = page.inner_text("#answered")
            assert before == "0"

            docs = make_documents(120, max_tokens=32)
            job = threading.Thread(
                target=lambda: anyio.run(lambda: gather_all(docs, Recorder(), base_url=gw.base_url, api_key="k"))
            )
            job.start()
            page.wait_for_function("Number(document.getElementById('queued').textContent) > 0", timeout=15_000)
            page.wait_for_function("Number(document.getElementById('rate').textContent) > 0", timeout=15_000)
            during = page.inner_text("#answered")
            job.join(timeout=60)
            assert not job.is_alive()
            page.wait_for_function("document.getElementById('answered').textContent === '120'", timeout=15_000)
            assert page.inner_text("#clients tbody tr td:first-child") == "local"
            assert "requests" in page.inner_text("#limits")
            assert page.inner_text("#cost").startswith("$")
            time.sleep(1.5)  # one more refresh after the job, still without errors
        finally:
            browser.close()
    assert during != before
    assert problems == []
