"""The gateway's state for one server: configuration, clients, scheduler, upstream, ledger and prices."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

from .._clock import Clock, SystemClock
from ..limits.limiter import Limits
from ..limits.protocol import LimiterLike
from ..pricing import PriceTable, load_prices
from ..retry import RetryPolicy
from ..tokens import InputEstimator
from .clients import Clients, ClientSpec
from .errors import OwnError, own_error
from .metrics import Ledger
from .scheduler import Refused, Scheduler
from .upstream import Upstream

__all__ = ["Gateway", "GatewayConfig"]

log = logging.getLogger("sluicegate.serve")


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayConfig:
    """Everything `sluicegate serve` decides at start. The key is kept out of `repr`."""

    provider: Literal["anthropic", "openai"] = "anthropic"
    base_url: str
    api_key: str = field(repr=False)
    clients: Clients = field(default_factory=lambda: Clients(None))
    limits: Limits | None = None
    max_concurrency: int | None = None
    minute: float = 60.0
    max_wait: float = 300.0  # seconds a request may wait for admission unless it says otherwise
    max_queue: int = 10_000
    bulk_every: int = 10
    max_cost: float | None = None
    prices: PriceTable | None = None
    retry: RetryPolicy | None = None
    shared_limits: str | None = None  # redis://... : one limiter shared with every process on the key
    shared_limits_name: str | None = None
    shared_limits_fallback: bool | int = False  # True or N: 1/N of the limits locally while Redis is lost
    emulated: bool = False


class Gateway:
    """The parts every request uses. Built when the app starts, closed when it stops."""

    def __init__(self, config: GatewayConfig, *, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.upstream = Upstream(
            provider=config.provider,
            base_url=config.base_url,
            api_key=config.api_key,
            limits=config.limits,
            max_concurrency=config.max_concurrency,
            minute=config.minute,
            retry=config.retry,
            shared_limits=config.shared_limits,
            shared_limits_name=config.shared_limits_name,
            shared_limits_fallback=config.shared_limits_fallback,
        )
        self.scheduler = Scheduler(
            max_queue=config.max_queue,
            bulk_every=config.bulk_every,
            rate_hint=self.limiter.ceiling,
            warm=lambda: self.limiter.statistics().latency_estimate is not None,
            clock=self.clock,
        )
        self.ledger = Ledger(started=self.clock.now())
        for name in [] if config.clients.open else config.clients.names:  # known clients show from the start
            spec = config.clients.spec(name)
            self.ledger.client(name, spec.budget if spec else None)
        self.prices = load_prices(config.prices)
        self.input_estimator = InputEstimator(provider=config.provider)
        self._probe_out = False

    def take_probe(self) -> bool:
        """True for the one request that may go out streamed as the limiter's probe (`_probe.py`): the upstream
        has not answered yet and no other request holds that role; `probe_done` gives it back."""
        if self._probe_out or self.upstream.transport.gate.answered:
            return False
        self._probe_out = True
        return True

    def probe_done(self) -> None:
        self._probe_out = False

    @property
    def limiter(self) -> LimiterLike:
        """The transport's limiter, read each time: a shared one replaces the local one at the first request."""
        return self.upstream.transport.limiter

    @property
    def provider(self) -> Literal["anthropic", "openai"]:
        return self.config.provider

    def budget_refusal(self, client: ClientSpec, model: str, worst: float | None) -> OwnError | None:
        """A budget answer when this request could take spend past the client's budget or the gateway's cap."""
        usage = self.ledger.client(client.name)
        caps = [("client budget", client.budget, usage.cost + usage.reserved)]
        caps.append(("gateway cost cap", self.config.max_cost, self.ledger.total_cost + self.ledger.total_reserved))
        for label, cap, spent in caps:
            if cap is None:
                continue
            if worst is None:
                self.ledger.refused["budget"] += 1
                return own_error(
                    self.provider, "budget", f"no price is known for model {model!r}, so the {label} cannot be kept"
                )
            if spent + worst > cap:
                self.ledger.refused["budget"] += 1
                return own_error(
                    self.provider,
                    "budget",
                    f"this request could take spend past the {label} of ${cap:.2f} "
                    f"(${spent:.4f} spent or reserved so far)",
                )
        return None

    def refusal(self, exc: Refused) -> OwnError:
        """The 429 for a request the scheduler will not queue or keep."""
        self.ledger.refused[exc.reason] += 1
        if exc.reason == "queue_full":
            message = "the gateway's queue is full"
        else:
            message = "the wait for the shared rate limit would pass this request's deadline (x-sluicegate-max-wait)"
        if exc.retry_after is not None:
            message += f"; expected wait {exc.retry_after:.1f} s"
        return own_error(self.provider, "rate_limited", message, retry_after=exc.retry_after)

    async def aclose(self) -> None:
        await self.upstream.aclose()
