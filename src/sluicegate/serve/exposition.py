"""The gateway seen from outside: one snapshot dict (the dashboard's JSON) and the Prometheus text format.

Both read the scheduler, the limiter and the ledger; neither holds a key, so neither can show one.
"""

from __future__ import annotations

from typing import Any

from .gateway import Gateway

__all__ = ["prometheus", "snapshot"]

_LIMITS = (
    ("requests", "requests_per_minute"),
    ("input_tokens", "input_tokens_per_minute"),
    ("output_tokens", "output_tokens_per_minute"),
    ("tokens", "tokens_per_minute"),
)
_BINDINGS = ("requests", "input_tokens", "output_tokens", "tokens", "concurrency", "cooldown")


def snapshot(g: Gateway) -> dict[str, Any]:
    """Everything the dashboard shows, as plain JSON-able data."""
    now = g.clock.now()
    lim = g.limiter.statistics()
    sched = g.scheduler.statistics()
    ledger = g.ledger
    seen = ledger.last_limits
    limits = []
    for name, attr in _LIMITS:
        per_minute = getattr(lim, attr)
        view = getattr(seen, name) if seen is not None else None
        if per_minute is None and view is None:
            continue
        limits.append(
            {
                "name": name,
                "per_minute": per_minute,
                "limit": view.limit if view else None,
                "remaining": view.remaining if view else None,
                "binding": lim.binding == name,
            }
        )
    queued = sched.queued_by_client
    clients = [
        {
            "name": name,
            "requests": c.requests,
            "succeeded": c.succeeded,
            "failed": c.failed,
            "disconnected": c.disconnected,
            "in_flight": c.in_flight,
            "queued": queued.get(name, 0),
            "input_tokens": c.input_tokens,
            "output_tokens": c.output_tokens,
            "cost": round(c.cost, 6),
            "unpriced": c.unpriced,
            "budget": c.budget,
        }
        for name, c in sorted(ledger.clients.items())
    ]
    transport = g.upstream.transport
    return {
        "provider": g.provider,
        "upstream": g.upstream.base_url,
        "emulated": g.config.emulated,
        "uptime": round(now - ledger.started, 3),
        "rate": round(ledger.rate(now), 3),
        "series": ledger.series(now),
        "in_flight": lim.in_flight,
        "concurrency_limit": lim.concurrency_limit,
        "queued": {"interactive": sched.queued_interactive, "bulk": sched.queued_bulk},
        "admission_interval": sched.interval,
        "admitted": sched.admitted,
        "preempted": sched.preempted,
        "binding": lim.binding,
        "cooldown": round(lim.cooldown_remaining, 3),
        "limits": limits,
        "upstream_attempts": transport.attempts,
        "upstream_failures": dict(transport.failures),
        "refused": dict(ledger.refused),
        "clients": clients,
        "cost": round(ledger.total_cost, 6),
        "max_cost": g.config.max_cost,
    }


def _line(out: list[str], name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
    out.append(f"# HELP {name} {help_text}")
    out.append(f"# TYPE {name} {kind}")
    for labels, value in samples:
        out.append(f"{name}{labels} {_num(value)}")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def prometheus(g: Gateway) -> str:
    """The Prometheus text exposition format (version 0.0.4)."""
    snap = snapshot(g)
    out: list[str] = []
    ledger = g.ledger
    _line(
        out,
        "sluicegate_requests_total",
        "counter",
        "Requests answered, by client and HTTP status (499: the client went away first).",
        [(f'{{client="{c}",status="{s}"}}', n) for (c, s), n in sorted(ledger.by_status.items())],
    )
    _line(
        out,
        "sluicegate_queue_depth",
        "gauge",
        "Requests waiting for their turn, by priority.",
        [(f'{{priority="{p}"}}', n) for p, n in snap["queued"].items()],
    )
    _line(out, "sluicegate_in_flight", "gauge", "Requests sent upstream and not finished.", [("", snap["in_flight"])])
    _line(
        out,
        "sluicegate_concurrency_limit",
        "gauge",
        "Requests the limiter lets be in flight at once.",
        [("", snap["concurrency_limit"])],
    )
    _line(
        out,
        "sluicegate_limit_per_minute",
        "gauge",
        "Rate limits in force (given or learnt from the upstream's headers), per minute.",
        [(f'{{limit="{x["name"]}"}}', x["per_minute"]) for x in snap["limits"] if x["per_minute"] is not None],
    )
    _line(
        out,
        "sluicegate_limit_remaining",
        "gauge",
        "What the upstream said was left in each bucket, on its latest response.",
        [(f'{{limit="{x["name"]}"}}', x["remaining"]) for x in snap["limits"] if x["remaining"] is not None],
    )
    _line(
        out,
        "sluicegate_binding_limit",
        "gauge",
        "1 for the gate the next request waits for (none while nobody waits).",
        [(f'{{limit="{b}"}}', 1 if snap["binding"] == b else 0) for b in _BINDINGS],
    )
    failures = snap["upstream_failures"]
    _line(
        out,
        "sluicegate_upstream_failures_total",
        "counter",
        "Failed upstream attempts by reason (retried inside the gateway unless final).",
        [(f'{{reason="{r}"}}', n) for r, n in sorted(failures.items())],
    )
    _line(
        out,
        "sluicegate_upstream_429_total",
        "counter",
        "429 answers from the upstream.",
        [("", failures.get("rate_limited", 0))],
    )
    _line(
        out,
        "sluicegate_upstream_attempts_total",
        "counter",
        "Requests sent upstream, retries included.",
        [("", snap["upstream_attempts"])],
    )
    _line(
        out,
        "sluicegate_refused_total",
        "counter",
        "The gateway's own refusals by reason (deadline, queue_full, budget, authentication).",
        [(f'{{reason="{r}"}}', n) for r, n in sorted(snap["refused"].items())],
    )
    tokens: list[tuple[str, float]] = []
    cost: list[tuple[str, float]] = []
    for c in snap["clients"]:
        tokens.append((f'{{client="{c["name"]}",kind="input"}}', c["input_tokens"]))
        tokens.append((f'{{client="{c["name"]}",kind="output"}}', c["output_tokens"]))
        cost.append((f'{{client="{c["name"]}"}}', c["cost"]))
    _line(out, "sluicegate_tokens_total", "counter", "Tokens used upstream, by client.", tokens)
    _line(out, "sluicegate_cost_usd_total", "counter", "Cost of the tokens used, by client (USD).", cost)
    interval = snap["admission_interval"]
    if interval is not None:
        _line(
            out,
            "sluicegate_admission_interval_seconds",
            "gauge",
            "Seconds between admissions while requests wait.",
            [("", interval)],
        )
    return "\n".join(out) + "\n"
