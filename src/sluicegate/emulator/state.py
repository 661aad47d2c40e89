"""Per-server emulator state: config, clocks, seeded RNG, rate limits, stats, cache and batches."""

from __future__ import annotations

import random
import time

from sluicegate.emulator.batch_store import BatchStore
from sluicegate.emulator.caching import PromptCache
from sluicegate.emulator.config import EmulatorConfig
from sluicegate.emulator.openai_batches import OpenAIBatches
from sluicegate.emulator.openai_cache import OpenAIPrefixCache
from sluicegate.emulator.openai_files import FileStore
from sluicegate.emulator.ratelimit import ServerLimits
from sluicegate.emulator.stats import Stats


class EmulatorState:
    """Everything one emulator instance shares between requests; owned by one event loop."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.stopping = False
        self.open_requests = 0  # HTTP requests the app is running now, on any route
        self._t0 = time.monotonic()
        self.rng = random.Random(config.seed)
        self.limits = ServerLimits(config, self.now)
        self.stats = Stats(self.now)
        self.cache = PromptCache()
        self.openai_cache = OpenAIPrefixCache()
        self.files = FileStore(config.seed)
        self.openai_batches = OpenAIBatches(duration=config.batch_seconds, deadline=config.batch_deadline)
        self.batches = BatchStore(
            duration=config.batch_seconds, deadline=config.batch_deadline, cancel_delay=1.0, seed=config.seed
        )

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
        self.limits = ServerLimits(self.config, self.now)
        self.stats = Stats(self.now)
        self.openai_cache.clear()
        self.files.clear()
        self.openai_batches.clear()
        self.cache.clear()
        self.batches.clear()
