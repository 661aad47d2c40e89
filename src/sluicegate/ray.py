"""Ray Data: run a dataset's rows through sluicegate, one Engine per actor, the key's limits shared through Redis.

    import ray, sluicegate.ray

    ds = ray.data.read_parquet("s3://bucket/tickets/")
    ds = ds.map_batches(
        sluicegate.ray.Requests,
        fn_constructor_kwargs={
            "template": "Summarise this ticket: {body}",
            "model": "claude-haiku-4-5",
            "max_tokens": 256,
            "shared_limits": "redis://redis-host:6379/0",  # every actor draws on one pool of the key's limits
        },
        concurrency=4,  # actors
        batch_size=128,  # rows in flight per actor at most; the limiter paces them
    )
    ds.write_parquet("s3://bucket/summaries/")

Each actor holds one Engine on an event loop in a background thread and runs each batch's rows concurrently
through it. Rows become requests through a `template` filled from the columns, or from a `params_column` holding
Messages (or Chat Completions) params as a dict or a JSON string. Results come back as columns: `text`, `error`,
`input_tokens`, `output_tokens`, `cost`. A bad row (a missing column, invalid params, an API error) gets `error`
set and never fails the job. The API key is read in the actor from `api_key_env` (pass it to the workers with
`ray.init(runtime_env={"env_vars": {...}})`), so it is not part of the task's arguments.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any, Literal

import anyio.from_thread

from ._exceptions import ConfigError
from ._models import ErrorInfo, RequestItem
from .engine import Engine
from .jobs.reader import Defaults, InputProblem, read_requests
from .jobs.tables import TableSpec, row_request

__all__ = ["RESULT_COLUMNS", "Requests"]

RESULT_COLUMNS = ("text", "error", "input_tokens", "output_tokens", "cost")
_KEY_ENV = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}


class Requests:
    """A callable class for `Dataset.map_batches`: one Engine per actor; each call answers one batch of rows."""

    def __init__(
        self,
        *,
        template: str | None = None,
        params_column: str | None = None,
        model: str | None = None,
        max_tokens: int | None = None,
        system: str | None = None,
        provider: Literal["anthropic", "openai"] = "anthropic",
        base_url: str | None = None,
        api_key_env: str | None = None,
        shared_limits: str | None = None,
        shared_limits_name: str | None = None,
        engine_options: Mapping[str, Any] | None = None,
    ) -> None:
        if (template is None) == (params_column is None):
            raise ConfigError("give exactly one of template= (filled from the columns) or params_column=")
        self._spec = TableSpec(template=template) if template is not None else None
        self._params_column = params_column
        self._defaults = Defaults(model=model, max_tokens=max_tokens, system=system)
        self._provider: Literal["anthropic", "openai"] = provider
        key_env = api_key_env or _KEY_ENV[provider]
        api_key = os.environ.get(key_env, "")
        if not api_key:
            raise ConfigError(f"{key_env} is not set in this Ray worker (pass it with runtime_env env_vars)")
        engine = Engine(
            provider=provider,
            api_key=api_key,
            base_url=base_url,
            shared_limits=shared_limits,
            shared_limits_name=shared_limits_name,
            **dict(engine_options or {}),
        )
        self._portal_cm: AbstractContextManager[anyio.from_thread.BlockingPortal] = (
            anyio.from_thread.start_blocking_portal()
        )
        self._portal = self._portal_cm.__enter__()
        try:
            # Entered and left in one task on the portal's loop, as the Engine's task group requires.
            self._engine_cm = self._portal.wrap_async_context_manager(engine)
            self._engine = self._engine_cm.__enter__()
        except BaseException:
            self._portal_cm.__exit__(None, None, None)
            raise

    def __call__(self, batch: Any) -> Any:
        """Answer every row of `batch` (a dict of columns, a pandas DataFrame or a pyarrow Table)."""
        columns, rebuild = _columns(batch)
        n = len(next(iter(columns.values()))) if columns else 0
        rows = [{name: _plain(values[i]) for name, values in columns.items()} for i in range(n)]
        parsed = [self._request(row, i) for i, row in enumerate(rows)]
        items = [p for p in parsed if isinstance(p, RequestItem)]
        answered = {r.index: r for r in self._portal.call(self._engine.map, items)} if items else {}
        results = [answered[p.index] if isinstance(p, RequestItem) else p.to_result() for p in parsed]
        extra = {
            "text": [r.text if r.ok else None for r in results],
            "error": [None if r.ok else _message(r.error) for r in results],
            "input_tokens": [r.usage.total_input_tokens if r.ok else None for r in results],
            "output_tokens": [r.usage.output_tokens if r.ok else None for r in results],
            "cost": [r.cost if r.ok else None for r in results],
        }
        return rebuild(extra)

    def _request(self, row: Mapping[str, Any], index: int) -> RequestItem | InputProblem:
        if self._spec is not None:
            return row_request(row, index, self._spec, self._defaults, self._provider)
        assert self._params_column is not None
        params = row.get(self._params_column)
        if isinstance(params, str | bytes):
            try:
                params = json.loads(params)
            except ValueError as exc:
                return InputProblem(index + 1, index, None, self._params_column, f"not valid JSON: {exc}")
        line = json.dumps({"custom_id": f"row-{index + 1}", "params": params}, ensure_ascii=False, default=str)
        parsed = next(read_requests([line], defaults=self._defaults, provider=self._provider))
        if isinstance(parsed, InputProblem):
            field = (parsed.field or "").replace("params", self._params_column, 1) or self._params_column
            return InputProblem(index + 1, index, None, field, parsed.message)
        return RequestItem(index=index, custom_id=parsed.custom_id, params=parsed.params, line=index + 1)

    def close(self) -> None:
        """Close the engine and its loop (Ray tears actors down without calling it; the process exit does)."""
        if getattr(self, "_portal", None) is None:
            return
        try:
            self._engine_cm.__exit__(None, None, None)
        finally:
            self._portal_cm.__exit__(None, None, None)
            self._portal = None  # type: ignore[assignment]


def _message(error: ErrorInfo | None) -> str:
    if error is None:
        return "no result"
    where = f" (field {error.field})" if error.field else ""
    return f"{error.kind}: {error.message}{where}"


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as plain Python values, so templates and JSON see ints, floats and strings."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def _columns(batch: Any) -> tuple[dict[str, Any], Any]:
    """The batch's columns, and a function that returns the same kind of batch with result columns added."""
    if isinstance(batch, Mapping):
        import numpy as np

        def as_numpy(extra: dict[str, list[Any]]) -> dict[str, Any]:
            out = dict(batch)
            for name, values in extra.items():
                out[name] = np.array(values, dtype=object)
            return out

        return dict(batch), as_numpy
    if hasattr(batch, "to_pydict"):  # pyarrow.Table
        import pyarrow as pa

        def as_arrow(extra: dict[str, list[Any]]) -> Any:
            table = batch
            types = [pa.string(), pa.string(), pa.int64(), pa.int64(), pa.float64()]
            for (name, values), kind in zip(extra.items(), types, strict=True):
                table = table.append_column(name, pa.array(values, type=kind))
            return table

        return batch.to_pydict(), as_arrow
    if hasattr(batch, "to_dict"):  # pandas.DataFrame

        def as_pandas(extra: dict[str, list[Any]]) -> Any:
            out = batch.copy()
            for name, values in extra.items():
                out[name] = values
            return out

        return {c: batch[c].to_numpy() for c in batch.columns}, as_pandas
    raise ConfigError(f"unsupported batch type {type(batch).__name__}: use batch_format='numpy', 'pandas' or 'pyarrow'")
