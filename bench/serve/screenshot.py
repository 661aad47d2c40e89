"""Screenshot of the gateway dashboard mid-job, in the OS's headless Chromium.

`python -m bench.serve.screenshot OUT.png`

Three clients share a gateway in front of the emulator at Tier 1 limits (one emulated minute = 6 s, so the
request limit binds): `web` streams interactive answers, `notebook` and `nightly` each fire a bulk
`asyncio.gather`. A few 529s are injected so the retried upstream errors show.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from pathlib import Path

import anthropic
import anyio

from sluicegate.demo.workload import make_documents
from sluicegate.emulator import EmulatorConfig, run_emulator
from sluicegate.emulator.config import FaultSpec
from sluicegate.serve import GatewayConfig
from sluicegate.serve.server import run_gateway

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


async def _bulk(base_url: str, name: str, n: int) -> None:
    client = anthropic.AsyncAnthropic(api_key="k", base_url=base_url, default_headers={"x-sluicegate-client": name})
    docs = make_documents(n, max_tokens=128, prefix=name)
    async with anyio.create_task_group() as tg:
        for doc in docs:
            params = {k: v for k, v in doc.items() if k != "custom_id"}
            tg.start_soon(lambda p=params: client.messages.create(**p))


async def _web(base_url: str, stop: threading.Event) -> None:
    client = anthropic.AsyncAnthropic(api_key="k", base_url=base_url, default_headers={"x-sluicegate-client": "web"})
    i = 0
    while not stop.is_set():
        messages = [{"role": "user", "content": f"question {i}"}]
        async with client.messages.stream(model="claude-haiku-4-5", max_tokens=200, messages=messages) as s:
            await s.get_final_message()
        i += 1


def main(out: Path) -> None:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        raise SystemExit("chromium is not installed")
    emulator = EmulatorConfig(
        tier=1,
        minute=6.0,
        first_token_latency=0.3,
        per_token_latency=0.004,
        jitter=0.3,
        min_output_tokens=30,
        max_output_tokens=120,
        faults=(FaultSpec(kind="overloaded", probability=0.04),),
    )
    with run_emulator(emulator) as emu:
        config = GatewayConfig(base_url=emu.base_url, api_key="emulator", minute=6.0, emulated=True)
        with run_gateway(config) as gw:
            stop = threading.Event()
            jobs = [
                threading.Thread(target=anyio.run, args=(_bulk, gw.base_url, "notebook", 400), daemon=True),
                threading.Thread(target=anyio.run, args=(_bulk, gw.base_url, "nightly", 300), daemon=True),
                threading.Thread(target=anyio.run, args=(_web, gw.base_url, stop), daemon=True),
            ]
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1440, "height": 900}, device_scale_factor=1)
                page.goto(gw.base_url + "/")
                for job in jobs:
                    job.start()
                time.sleep(25)
                page.screenshot(path=str(out), full_page=True)
                browser.close()
            stop.set()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/serve-dashboard.png"))
