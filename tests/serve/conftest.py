"""Fixtures for the gateway: `gateway(...)` starts one on 127.0.0.1:0 in front of a fresh emulator."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest

from sluicegate.emulator import EmulatorConfig, RunningEmulator, run_emulator
from sluicegate.serve import GatewayConfig
from sluicegate.serve.gateway import Gateway
from sluicegate.serve.server import run_gateway

UPSTREAM_KEY = "sk-ant-upstream-SECRET-4f9c2e7a1b3d"


@dataclass(frozen=True, slots=True)
class RunningGateway:
    """A live gateway, its emulator upstream, and a way to read its statistics."""

    base_url: str
    upstream: RunningEmulator
    app: Any

    @property
    def state(self) -> Gateway:
        gateway: Gateway = self.app.state.gateway
        return gateway

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.base_url + "/_sluicegate/stats", timeout=10) as resp:
            data: dict[str, Any] = json.load(resp)
        return data

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.base_url + path, timeout=10) as resp:
            return str(resp.read().decode())


@pytest.fixture
def gateway() -> Iterator[Callable[..., RunningGateway]]:
    """Factory: `gateway(emulator=dict(...), **config)` starts an emulator and a gateway in front of it."""
    with ExitStack() as stack:

        def start(*, emulator: dict[str, Any] | None = None, **config: Any) -> RunningGateway:
            emu = stack.enter_context(run_emulator(EmulatorConfig(**(emulator or {}))))
            provider = config.get("provider", "anthropic")
            config.setdefault("api_key", UPSTREAM_KEY)
            config.setdefault("emulated", True)
            base = emu.base_url if provider == "anthropic" else emu.openai_base_url
            running = stack.enter_context(run_gateway(GatewayConfig(base_url=base, **config)))
            return RunningGateway(running.base_url, emu, running.app)

        yield start
