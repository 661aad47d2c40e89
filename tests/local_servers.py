"""Loopback servers for tests: a free port and a real redis-server.

A module of its own, not conftest: several test folders have a conftest, so `from conftest import ...` would
depend on which of them pytest imported first.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest

__all__ = ["free_port", "start_redis"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_redis(port: int, *extra: str) -> subprocess.Popen[bytes]:
    """redis-server on `port`, no snapshots, no append-only file (`extra`: more options); returns once it accepts
    connections."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server): the shared limiter needs it")
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *extra]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise RuntimeError(f"redis-server did not start on port {port}")
