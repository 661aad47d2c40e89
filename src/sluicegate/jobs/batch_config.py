"""What a batch job is given, and what it is built from: its settings, the settings its store pins, and the batch
API of its provider."""

from __future__ import annotations

import hashlib
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx2

from .._clock import Clock
from ..limits.limiter import Limits
from ..pricing import PriceTable
from ..retry import RetryPolicy
from .batch_api import BatchClient
from .batch_service import AnthropicBatches, BatchService
from .deadline import OnlinePace, deadline_setting
from .durable import file_settings, store_path_for
from .openai_batch import OpenAIBatchClient, OpenAIBatches
from .reader import Defaults
from .tables import TableSpec

__all__ = ["BatchJobConfig", "batch_service_for", "batch_settings"]


@dataclass(frozen=True, kw_only=True)
class BatchJobConfig:
    input_path: Path
    output_path: Path
    api_key: str = field(repr=False)
    base_url: str
    provider: Literal["anthropic", "openai"] = "anthropic"
    settings_base: str = ""  # what identifies the endpoint in the store (never the key)
    defaults: Defaults = field(default_factory=Defaults)
    prices: PriceTable | None = None  # None: the shipped table
    poll_interval: float = 30.0
    retry_failed: bool = False
    restart: bool = False
    # Anthropic: breakpoints (1 h TTL) on prefixes shared by several requests, and a one-request priming batch per
    # prefix submitted and ended before the rest, since a batch reads no online write (see jobs/warmup.py).
    cache_warmup: bool = True
    # Seconds from the start by which the job must end: batches still running when only the time to send their
    # rest online is left are cancelled, and that rest goes online (see jobs/deadline.py). None: no deadline.
    deadline: float | None = None
    pace: OnlinePace = field(default_factory=OnlinePace)  # the online route's speed, for the deadline
    limits: Limits | None = None  # the online route's limits (None: learnt from headers)
    cancel_allowance: float = 120.0  # seconds a cancel may take to end a batch
    max_requests: int | None = None  # per batch; None: the API's limit (a larger value is cut to it)
    max_bytes: int | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # The built-in emulator lives as long as one run: batches an earlier run recorded are unknown to the next one,
    # and their items are submitted again. Against a real API an unknown batch stops the job instead (another key
    # or workspace: submitting again could pay twice).
    forget_unknown_batches: bool = False
    transport: httpx2.AsyncBaseTransport | None = field(default=None, repr=False)
    # The wall clock (epoch seconds) for what outlives a run: the dates of create intents (compared with the server's
    # created_at), of priming batches, and the deadline's instant. Waits and durations within a run (the poll waits,
    # the time left to the deadline) are on the monotonic Clock given to run_batch_job.
    clock: Callable[[], float] = field(default=time.time, repr=False)
    resume_command: str = ""  # the exact command that resumes this job (the CLI builds it from the flags given)
    table: TableSpec | None = None  # rows of a table (or any JSONL) made into requests by a template
    max_cost: float | None = None  # the job's cap in USD, across runs (see jobs/batch_cap.py); None: no cap

    def resume(self) -> str:
        """The command that resumes this job: the one given, else input and output alone."""
        flag = ["--provider", "openai"] if self.provider == "openai" else []
        return self.resume_command or shlex.join(
            ["sluicegate", "batch", str(self.input_path), "-o", str(self.output_path), *flag]
        )


def batch_settings(config: BatchJobConfig) -> dict[str, str]:
    """What the job store pins for a batch job: a resume with other settings is refused."""
    return {
        "mode": "batch",  # a `run` store is not a batch store: results would be priced and sent differently
        "provider": config.provider,
        "endpoint": config.settings_base,
        **file_settings(config.input_path, config.defaults),
        "order": "completion",
        **(config.table.settings() if config.table is not None else {}),
        **deadline_setting(config.deadline),
    }


def batch_service_for(config: BatchJobConfig, clock: Clock) -> tuple[BatchClient, BatchService]:
    """The HTTP client and the batch API of the job's provider; retries wait on `clock`."""
    options: dict[str, Any] = {
        "api_key": config.api_key,
        "base_url": config.base_url,
        "retry": config.retry,
        "transport": config.transport,
        "clock": clock,
    }
    if config.provider == "openai":
        openai = OpenAIBatchClient(**options)
        # Names this job in each batch's metadata: a re-run recognises its own interrupted submits by it.
        token = hashlib.sha256(str(store_path_for(config.output_path).resolve()).encode()).hexdigest()[:16]
        return openai, OpenAIBatches(openai, token)
    client = BatchClient(**options)
    return client, AnthropicBatches(client)
