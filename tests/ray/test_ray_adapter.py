"""`sluicegate.ray.Requests`: rows to requests and results to columns, directly and on a local Ray cluster."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from sluicegate._exceptions import ConfigError
from sluicegate.emulator import RunningEmulator
from sluicegate.ray import RESULT_COLUMNS, Requests

pytestmark = [
    pytest.mark.e2e,
    # Ray Data's own DataContext warns about its own deprecated fields (`use_polars`, ...) when it is created.
    pytest.mark.filterwarnings("ignore:`[a-z_0-9]+` is deprecated:DeprecationWarning"),
]

KEY = "sk-ant-test-SECRET-ray-3456"


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    """The API key where an actor reads it: its environment."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    return KEY


def test_a_batch_gets_result_columns_and_bad_rows_get_errors(
    emulator: Callable[..., RunningEmulator], key: str
) -> None:
    """A numpy batch through the template: answers in `text`, a missing value and a bad id as `error` naming it."""
    emu = emulator(minute=3.0, rpm=3000, first_token_latency=0.02)
    udf = Requests(template="Summarise: {body}", model="claude-haiku-4-5", max_tokens=32, base_url=emu.base_url)
    try:
        batch = {
            "id": np.array([1, 2, 3, 4]),
            "body": np.array(["printer on fire", None, "coffee machine leaks", "lift stuck"], dtype=object),
        }
        out = udf(batch)
    finally:
        udf.close()
    assert list(out) == ["id", "body", *RESULT_COLUMNS]
    assert out["id"].tolist() == [1, 2, 3, 4]
    assert out["error"][1] == "invalid_request: row 2: column 'body' is empty (field body)"
    for i in (0, 2, 3):
        assert out["error"][i] is None
        assert out["text"][i]
        assert out["output_tokens"][i] > 0
        assert out["cost"][i] > 0
    assert out["text"][1] is None


def test_a_params_column_and_an_arrow_batch(emulator: Callable[..., RunningEmulator], key: str) -> None:
    """Params as JSON strings in a column (Arrow batch in, Arrow batch out); invalid params are a row error."""
    emu = emulator(minute=3.0, rpm=3000, first_token_latency=0.02)
    good = {"model": "claude-haiku-4-5", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
    bad = {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "no max_tokens"}]}
    table = pa.table({"params": [json.dumps(good), json.dumps(bad), "{not json"]})
    udf = Requests(params_column="params", base_url=emu.base_url)
    try:
        out = udf(table)
    finally:
        udf.close()
    rows = out.to_pylist()
    assert rows[0]["text"]
    assert rows[0]["error"] is None
    assert rows[1]["error"].startswith("invalid_request: missing 'max_tokens'")
    assert rows[1]["error"].endswith("(field params.max_tokens)")
    assert rows[2]["error"].startswith("invalid_request: not valid JSON")


def test_exactly_one_source_of_requests_and_a_key_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither or both of template/params_column, or no key in the worker: a ConfigError before anything runs."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    with pytest.raises(ConfigError, match="exactly one"):
        Requests()
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY is not set"):
        Requests(template="{x}")


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    """A local Ray cluster with 2 CPUs for this module; the actors get the key through their environment."""
    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"ANTHROPIC_API_KEY": KEY, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}},
    )
    try:
        yield ray
    finally:
        ray.shutdown()


def test_a_dataset_on_a_local_cluster_shares_one_limit(
    ray_cluster: Any, emulator: Callable[..., RunningEmulator], redis_url: str
) -> None:
    """Two actors through the shared limiter: every row answered once, the 3 bad rows errored, not one 429."""
    emu = emulator(minute=3.0, rpm=600, first_token_latency=0.05)
    bad = {17, 120, 333}
    rows = [{"n": i, "body": None if i in bad else f"ticket {i}"} for i in range(400)]
    ds = ray_cluster.data.from_items(rows).map_batches(
        Requests,
        fn_constructor_kwargs={
            "template": "Summarise: {body}",
            "model": "claude-haiku-4-5",
            "max_tokens": 16,
            "base_url": emu.base_url,
            "shared_limits": redis_url,
            "shared_limits_name": "ray-test",
            "engine_options": {"minute": 3.0},
        },
        concurrency=2,
        batch_size=50,
    )
    out = sorted(ds.take_all(), key=lambda r: r["n"])
    assert [r["n"] for r in out] == list(range(400))
    errored = {r["n"] for r in out if r["error"] is not None}
    assert errored == bad
    assert all(r["text"] for r in out if r["n"] not in bad)
    assert emu.stats()["status"] == {"200": 397}
