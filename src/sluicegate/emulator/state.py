"""Per-server emulator state: config, clocks, seeded RNG, rate limits, stats, cache and batches."""

from __future__ import annotations

import random
import time
from typing import Any

from sluicegate.emulator.config import EmulatorConfig
from sluicegate.emulator.openai_batches import OpenAIBatches
from sluicegate.emulator.openai_cache import OpenAIPrefixCache
from sluicegate.emulator.openai_files import FileStore
from sluicegate.emulator.ratelimit import Limits
from sluicegate.emulator.stats import Stats


class EmulatorState:
    """Everything one emulator instance shares between requests; owned by one event loop."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.stopping = False
        self._t0 = time.monotonic()
        self.rng = random.Random(config.seed)
        self.limits = Limits(config, self.now)
        self.stats = Stats(self.now)
        self.cache: Any = None
        self.openai_cache = OpenAIPrefixCache()
        self.batches: Any = None
        self.files = FileStore(config.seed)
        self.openai_batches = OpenAIBatches(duration=config.batch_seconds, deadline=config.batch_deadline)
        try:
            from sluicegate.emulator.caching import PromptCache

            self.cache = PromptCache()
        except ImportError:  # caching is optional while it is being built
            self.cache = None
        try:
            from sluicegate.emulator.batch_store import BatchStore

            self.batches = BatchStore(
                duration=config.batch_seconds, deadline=config.batch_deadline, cancel_delay=1.0, seed=config.seed
            )
        except ImportError:
            self.batches = None

    def now(self) -> float:
        """Real seconds since the server started."""
        return time.monotonic() - self._t0

    def emulated_now(self) -> float:
        """Emulated seconds since start (real seconds scaled by 60 / minute)."""
        return self.now() * 60.0 / self.config.minute

    def reset(self) -> None:
        """Forget buckets, stats, cache entries and batches; reseed the RNG. The clock keeps running.

        Done in place: routes built at startup hold references to the RNG, the cache and the batch store.
        """
        self.rng.seed(self.config.seed)
        self.limits = Limits(self.config, self.now)
        self.stats = Stats(self.now)
        self.openai_cache.clear()
        self.files.clear()
        self.openai_batches.clear()
        if self.cache is not None:
            self.cache.clear()
        if self.batches is not None:
            self.batches.clear()
