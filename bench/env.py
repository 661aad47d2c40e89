"""The benchmark's own virtualenv, built from the project's `bench` extra, and which peers it could install."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "bench" / "out" / "venv"
SETUP_LOG = ROOT / "bench" / "out" / "setup.json"
PEER_MODULES = {"langchain": "langchain_anthropic", "litellm": "litellm"}
VERSIONED = ("anthropic", "httpx2", "langchain-anthropic", "langchain-core", "litellm", "openai", "matplotlib")


def venv_python() -> Path:
    return VENV / "bin" / "python"


def in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def _pip(args: list[str], timeout: float) -> tuple[bool, str]:
    try:
        proc = subprocess.run(
            [str(venv_python()), "-m", "pip", "install", "--disable-pip-version-check", "-q", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False, f"pip timed out after {timeout:.0f} s"
    tail = [line for line in (proc.stderr + proc.stdout).splitlines() if "is ignored" not in line][-5:]
    return proc.returncode == 0, " | ".join(tail)


def setup(log: object = print) -> dict[str, str]:
    """Create the venv with `pip install -e '.[bench]'`; on failure install the parts one by one and record why."""
    notes: dict[str, str] = {}
    if not venv_python().exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    print_ = log if callable(log) else print
    print_("bench: installing the project's bench extra into its own virtualenv (first run only) ...")
    ok, why = _pip(["-e", ".[bench]", "-c", "bench/constraints.txt"], timeout=900)
    if not ok:
        notes["bench extra"] = f"pip install -e '.[bench]' failed: {why}"
        print_(f"bench: {notes['bench extra']}; installing the parts one by one")
        ok, why = _pip(["-e", ".", "matplotlib>=3.8", "psutil>=5.9"], timeout=600)
        if not ok:
            raise SystemExit(f"bench: cannot install the project itself into the bench venv: {why}")
        for name, requirement in (("langchain", "langchain-anthropic>=0.3"), ("litellm", "litellm>=1.50")):
            ok, why = _pip([requirement, "-c", "bench/constraints.txt"], timeout=600)
            if not ok:
                notes[name] = f"pip install {requirement} failed: {why}"
    SETUP_LOG.write_text(json.dumps(notes, indent=2), encoding="utf-8")
    return notes


def ensure(argv: list[str]) -> None:
    """Re-run this command inside the bench venv (creating it if needed), unless already there."""
    if in_venv() or os.environ.get("SLUICEGATE_BENCH_NO_VENV"):
        return
    if not venv_python().exists() or not SETUP_LOG.exists():
        setup()
    os.execv(str(venv_python()), [str(venv_python()), "-m", "bench", *argv])


def unavailable_peers() -> dict[str, str]:
    """Peers that cannot run here, with the reason (install failure recorded at setup, or import missing)."""
    notes: dict[str, str] = json.loads(SETUP_LOG.read_text(encoding="utf-8")) if SETUP_LOG.exists() else {}
    out: dict[str, str] = {}
    for peer, module in PEER_MODULES.items():
        if importlib.util.find_spec(module) is None:
            out[peer] = notes.get(peer, f"{module} is not importable in this environment")
    return out


def versions() -> dict[str, str]:
    """Installed versions of the peers and the libraries under them."""
    out: dict[str, str] = {"python": sys.version.split()[0]}
    for name in VERSIONED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
