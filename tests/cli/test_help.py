"""Help that a newcomer can act on: every command has an example, every option of run and emulate says what it
does, the fault kinds are listed, the top-level list is never cut, and the emulator defaults agree with run's."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from sluicegate.cli import main
from sluicegate.cli.emulate import emulate
from sluicegate.cli.run import _EMULATED_MINUTE, run
from sluicegate.emulator import RunningEmulator

from ._jobfiles import env_for, read_results

COMMANDS = main.list_commands(click.Context(main))  # every command, so a new one needs its example too


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_an_example(name: str) -> None:
    """`sluicegate NAME --help` shows an `Example: sluicegate NAME ...` line."""
    result = CliRunner().invoke(main, [name, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    assert f"Example: sluicegate {name}" in " ".join(result.output.split())  # on one line or the next


@pytest.mark.parametrize("command", [run, emulate])
def test_every_option_has_help(command: click.Command) -> None:
    """No option of run or emulate is left without a help text (--provider, --rpm, --host, --seed were)."""
    bare = [p.name for p in command.params if isinstance(p, click.Option) and not p.help]
    assert bare == []


def test_fault_kinds_are_listed_and_the_command_list_is_whole() -> None:
    """The --fault help names every kind; the top-level list shows each command's first sentence in full."""
    emulate_help = CliRunner().invoke(main, ["emulate", "--help"], terminal_width=100).output
    for kind in ("overloaded", "api_error", "unavailable", "reset", "hang", "stream_error", "truncate", "slow"):
        assert kind in emulate_help
    top = CliRunner().invoke(main, ["--help"], terminal_width=80).output
    commands = top.split("Commands:", 1)[1]
    assert "..." not in commands
    assert "without sending anything." in " ".join(top.split())


def test_emulate_defaults_match_runs_built_in_emulator() -> None:
    """`sluicegate emulate` and `run`'s built-in emulator default to the same tier and the same emulated minute."""
    defaults = {p.name: p.default for p in emulate.params}
    run_defaults = {p.name: p.default for p in run.params}
    assert defaults["tier"] == run_defaults["tier"] == 1
    assert defaults["minute"] == _EMULATED_MINUTE


@pytest.mark.parametrize("name", ["run", "batch", "estimate", "plan"])
def test_line_defaults_read_the_same_in_every_command(name: str) -> None:
    """run, batch, estimate and plan take --model/--max-tokens/--system from one option set: same help, which
    says that a line's own value wins."""
    command = main.get_command(click.Context(main), name)
    assert command is not None
    helps = {p.name: p.help for p in command.params if isinstance(p, click.Option)}
    assert helps["model"] == "Model for lines that name none (a line's own wins)."
    assert helps["max_tokens"] == "max_tokens for lines that set none (a line's own wins)."
    assert helps["system"] == "System prompt for lines that have none (a line's own wins)."


@pytest.mark.e2e
@pytest.mark.parametrize("name", ["run", "batch"])
def test_a_flag_a_line_overrides_is_named(emulator: Callable[..., RunningEmulator], tmp_path: Path, name: str) -> None:
    """--model and --max-tokens given while lines set their own: the job says how many lines kept their own."""
    emu = emulator(minute=3.0, rpm=2000, first_token_latency=0.01, batch_seconds=20.0)
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    lines = [{"id": "a", "prompt": "x", "model": "claude-haiku-4-5", "max_tokens": 5}, {"id": "b", "prompt": "y"}]
    inp.write_text("".join(json.dumps(line) + "\n" for line in lines))
    cmd = [sys.executable, "-m", "sluicegate", name, str(inp), "-o", str(out)]
    cmd += ["--minute", "3"] if name == "run" else ["--poll-interval", "0.1"]
    cmd += ["--model", "claude-sonnet-4-5", "--max-tokens", "20"]
    proc = subprocess.run(cmd, env=env_for(emu, "sk-test"), capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stderr.split())
    assert "--model did not apply to 1 line(s) that set their own value" in text
    assert "--max-tokens did not apply to 1 line(s)" in text
    assert len(read_results(out)) == 2


def test_plan_estimate_run_and_batch_share_their_common_options() -> None:
    """--provider, --rpm/--itpm/--otpm and (where they exist) --expected-output, --deadline and --cache-warmup are
    declared once: the same type, default and parsing on every command that has them."""
    from sluicegate.cli.batch import batch
    from sluicegate.cli.estimate import estimate
    from sluicegate.cli.plan import plan

    def spec(command: click.Command, name: str) -> tuple[object, ...] | None:
        found = next((p for p in command.params if p.name == name), None)
        if found is None:
            return None
        return (str(found.type), found.default, found.callback, tuple(getattr(found, "secondary_opts", ())))

    commands = [plan, estimate, run, batch]
    for name in ("provider", "rpm", "itpm", "otpm", "expected_output", "deadline", "cache_warmup"):
        specs = {spec(command, name) for command in commands} - {None}
        assert len(specs) == 1, name
    assert spec(plan, "deadline") is not None
    assert spec(run, "deadline") is not None
    assert spec(plan, "expected_output") is not None
    assert spec(estimate, "expected_output") is not None
