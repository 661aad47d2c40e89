"""`run --route flex`: OpenAI's flex tier at batch prices, each refused request answered on the standard tier."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from sluicegate.emulator import RunningEmulator
from sluicegate.pricing import default_table
from sluicegate.providers.openai import usage_from_openai

from ._jobfiles import read_results

pytestmark = pytest.mark.e2e

N = 30


def _write_prompts(path: Path, prefix: str, n: int, text: str, max_tokens: int) -> None:
    """n gpt-4o-mini prompt lines with ids `prefix`0, `prefix`1, ..."""
    with path.open("w") as f:
        for i in range(n):
            line = {"id": f"{prefix}{i}", "prompt": f"{text} {i}", "model": "gpt-4o-mini", "max_tokens": max_tokens}
            f.write(json.dumps(line) + "\n")


def _openai_env(emu: RunningEmulator) -> dict[str, str]:
    """This environment without provider settings, pointing the OpenAI client at the emulator."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OPENAI_"))}
    env.update({"OPENAI_API_KEY": "sk-flex", "OPENAI_BASE_URL": emu.openai_base_url})
    return env


def test_flex_answers_at_batch_prices_and_refusals_fall_back_to_standard(
    emulator: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    """With a third of flex requests refused, every request still succeeds once: flex answers cost half, the refused
    ones are answered on the standard tier at the full price, and the emulator answered exactly N (a refusal is
    not billed, so nothing is paid twice)."""
    emu = emulator(minute=3.0, rpm=4000, itpm=2_000_000, otpm=400_000, flex_refusal=0.35, seed=7)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write_prompts(inp, "f", N, "question", 30)
    env = _openai_env(emu)
    command = [
        sys.executable, "-m", "sluicegate", "run", str(inp), "-o", str(out), "--provider", "openai",
        "--route", "flex", "--minute", "3", "--quiet",
    ]  # fmt: skip
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr
    lines = read_results(out)
    assert sorted(line["custom_id"] for line in lines) == sorted(f"f{i}" for i in range(N))
    tiers = Counter(line["result"]["message"].get("service_tier", "default") for line in lines)
    status = emu.stats()["endpoints"]["POST /v1/chat/completions"]
    assert status["200"] == N  # each request answered (billed) once
    refused = int(status.get("429", 0))
    assert refused >= 1
    assert tiers["default"] == refused  # exactly the refused ones went standard
    assert tiers["flex"] == N - refused
    expected = 0.0
    for line in lines:
        message = line["result"]["message"]
        cost = default_table().cost(message["model"], usage_from_openai(message["usage"]))
        assert cost is not None
        expected += cost * (0.5 if message.get("service_tier") == "flex" else 1.0)
    with sqlite3.connect(out.with_name(out.name + ".sluicegate.db")) as db:
        assert db.execute("SELECT total(cost) FROM entries").fetchone()[0] == pytest.approx(expected)


def test_flex_needs_the_openai_provider(tmp_path: Path) -> None:
    """`--route flex` with Anthropic is a usage error (exit 2) naming the provider option."""
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"id": "a", "prompt": "x", "model": "claude-haiku-4-5", "max_tokens": 5}) + "\n")
    command = [sys.executable, "-m", "sluicegate", "run", str(inp), "-o", str(tmp_path / "o.jsonl"), "--route", "flex"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "--provider openai" in proc.stderr


def test_a_near_deadline_sends_a_too_slow_flex_answer_to_the_standard_tier_in_time(
    emulator: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    """Flex answers take 12 s here; with `--deadline 2s` flex gets at most half of it (1 s), so every request is
    answered on the standard tier well before flex would have answered."""
    emu = emulator(minute=3.0, rpm=4000, itpm=2_000_000, otpm=400_000, first_token_latency=0.3, flex_slowdown=40.0)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write_prompts(inp, "s", 3, "q", 5)
    env = _openai_env(emu)
    command = [
        sys.executable, "-m", "sluicegate", "run", str(inp), "-o", str(out), "--provider", "openai",
        "--route", "flex", "--deadline", "2s", "--minute", "3", "--quiet",
    ]  # fmt: skip
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = read_results(out)
    assert sorted(line["custom_id"] for line in lines) == ["s0", "s1", "s2"]
    assert {line["result"]["message"].get("service_tier", "default") for line in lines} == {"default"}


def test_max_cost_caps_the_flex_route_counting_flex_answers_at_the_batch_rate(
    emulator: Callable[..., RunningEmulator], tmp_path: Path
) -> None:
    """`--route flex --max-cost`: the run stops at the cap (exit 3) with what it spent, flex answers at half price
    and standard fallbacks at full price, within the cap plus one request's worst cost; a resume with the same cap
    sends nothing more."""
    emu = emulator(minute=3.0, rpm=4000, itpm=2_000_000, otpm=400_000, flex_refusal=0.3, seed=3)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write_prompts(inp, "c", N, "question", 30)
    env = _openai_env(emu)
    cap = 0.0002
    command = [
        sys.executable, "-m", "sluicegate", "run", str(inp), "-o", str(out), "--provider", "openai",
        "--route", "flex", "--minute", "3", "--quiet", "--max-cost", str(cap),
    ]  # fmt: skip
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 3, proc.stderr
    assert "cost cap" in proc.stderr
    prices = default_table()
    worst = prices.estimate_cost("gpt-4o-mini", 40, 30)
    assert worst is not None
    lines = read_results(out)
    assert 0 < len(lines) < N
    spent = 0.0
    for line in lines:
        message = line["result"]["message"]
        cost = prices.cost(message["model"], usage_from_openai(message["usage"]))
        assert cost is not None
        spent += cost * (0.5 if message.get("service_tier") == "flex" else 1.0)
    with sqlite3.connect(out.with_name(out.name + ".sluicegate.db")) as db:
        assert db.execute("SELECT total(cost) FROM entries").fetchone()[0] == pytest.approx(spent)
    assert spent <= cap + worst
    answered = emu.stats()["endpoints"]["POST /v1/chat/completions"]["200"]
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=90)
    assert again.returncode == 3, again.stderr
    assert emu.stats()["endpoints"]["POST /v1/chat/completions"]["200"] == answered
