"""`sluicegate estimate`: token, cost and duration figures computed before anything is sent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sluicegate._models import RequestItem
from sluicegate.cli import main
from sluicegate.jobs.estimate import estimate
from sluicegate.jobs.reader import InputProblem
from sluicegate.tokens import heuristic_tokens


def _item(i: int, model: str, max_tokens: int) -> RequestItem:
    params = {"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": "x" * 35}]}
    return RequestItem(index=i, custom_id=str(i), params=params)


def test_totals_costs_and_duration_are_exact() -> None:
    """100 haiku requests of 14 input tokens and max 400 output: exact tokens, dollars and minutes."""
    items = [_item(i, "claude-haiku-4-5", 400) for i in range(100)]
    per_input = heuristic_tokens(items[0].params)
    assert per_input == 14  # 35 characters / 3.5 + 4 for the one message
    est = estimate([*items, InputProblem(line=101, index=100, custom_id=None, field=None, message="not JSON")])
    row = est.models["claude-haiku-4-5"]
    assert (row.requests, row.input_tokens, row.max_output_tokens, row.expected_output_tokens) == (
        100,
        1400,
        40_000,
        10_000,
    )
    assert est.invalid == 1
    # $1 / $5 per million tokens
    assert row.cost("claude-haiku-4-5", row.max_output_tokens) == (1400 * 1.0 + 40_000 * 5.0) / 1e6
    assert row.cost("claude-haiku-4-5", row.max_output_tokens, batch=True) == (1400 * 1.0 + 40_000 * 5.0) / 2e6
    # 50 RPM binds: 100 requests take 2 minutes; 8,000 OTPM with 10,000 expected output tokens takes 1.25.
    assert est.minutes(50, 30_000, 8_000) == 2.0
    assert est.minutes(None, None, 8_000, expected=False) == 5.0
    assert est.minutes(None, None, None) is None


def test_the_command_prints_a_table_and_names_bad_lines(tmp_path: Path) -> None:
    """The CLI reads the file, shows models, costs and duration, and names the first invalid lines."""
    inp = tmp_path / "in.jsonl"
    lines = [json.dumps({"id": f"t{i}", "prompt": "Summarise this ticket please"}) for i in range(20)]
    lines.append("{broken")
    inp.write_text("\n".join(lines) + "\n")
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        main, ["estimate", str(inp), "--model", "claude-sonnet-4-6", "--max-tokens", "300", "--rpm", "50"]
    )
    assert result.exit_code == 0, result.output
    assert "claude-sonnet-4-6" in result.output
    assert "20 requests, 1 invalid" in result.output
    assert "line 21" in result.output
    assert "Duration at these limits: 24 s expected" in result.output


def test_prices_file_replaces_the_shipped_prices(tmp_path: Path) -> None:
    """--prices FILE prices the estimate with the user's table, batch discount included; unknown models say so."""
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"id": "t", "prompt": "x" * 35}) + "\n")
    prices = tmp_path / "prices.json"
    # 14 input tokens at $1000 and 400 output at $1000 per million: $0.414 online at most, $0.1035 at 25% batch.
    prices.write_text(json.dumps({"batch_discount": 0.25, "models": {"acme-1": {"input": 1000, "output": 1000}}}))
    runner = CliRunner(env={"COLUMNS": "200"})
    args = ["estimate", str(inp), "--model", "acme-1", "--max-tokens", "400", "--prices", str(prices)]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "$0.11 – $0.41" in result.output  # 100 expected or 400 max output tokens
    assert "$0.03 – $0.10" in result.output
    shipped = runner.invoke(main, args[:-2])
    assert shipped.exit_code == 0, shipped.output
    assert "No price is known for 'acme-1'" in shipped.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"models": {"acme-1": {"input": 1}}}', 'models.acme-1: missing "output"'),
        ('{"models": {"acme-1": {"input": 1, "output": "2"}}}', "models.acme-1.output: a price must be"),
        ("{not json", "cannot read price table"),
    ],
)
def test_a_bad_prices_file_is_a_usage_error(tmp_path: Path, content: str, message: str) -> None:
    """A broken --prices file exits 2 (usage error) with a message naming the file and the field."""
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"id": "t", "prompt": "hello"}) + "\n")
    prices = tmp_path / "prices.json"
    prices.write_text(content)
    result = CliRunner(env={"COLUMNS": "300"}).invoke(main, ["estimate", str(inp), "--prices", str(prices)])
    assert result.exit_code == 2
    flat = " ".join(result.output.split())
    assert "--prices" in flat
    assert message in flat
    assert "prices.json" in flat


def test_messages_without_limits_with_a_tier_and_without_a_price(tmp_path: Path) -> None:
    """No limits: one sentence saying what to give; --tier uses the published limits; an unknown model's cost is
    "unknown" with the --prices hint; a tiny job's duration is in seconds, never "0.0 min"."""
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"id": "a", "prompt": "hi", "model": "my-finetune", "max_tokens": 10}) + "\n")
    runner = CliRunner(env={"COLUMNS": "200"})
    bare = runner.invoke(main, ["estimate", str(inp)])
    assert bare.exit_code == 0, bare.output
    assert "give your account's limits (--rpm, --itpm, --otpm) or a usage tier (--tier 1-4)" in bare.output
    assert "unknown price – unknown price" not in bare.output
    assert "unknown: no price (--prices FILE)" in bare.output
    assert "No price is known for 'my-finetune': give a price file with --prices FILE" in bare.output
    tiered = runner.invoke(main, ["estimate", str(inp), "--tier", "4"])
    assert tiered.exit_code == 0, tiered.output
    assert "Tier 4 limits: 4,000 requests, 2,000,000 input and 400,000 output tokens a minute." in tiered.output
    assert "Duration at these limits: under a second expected" in tiered.output
    assert "0.0 min" not in tiered.output
