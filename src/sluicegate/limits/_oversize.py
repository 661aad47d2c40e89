"""Refusing a request no bucket could ever hold: the server would answer it with a 429 every time."""

from __future__ import annotations

from .._exceptions import InputError

__all__ = ["refuse_oversize"]


def refuse_oversize(
    input_tokens: int,
    output_tokens: int,
    *,
    input_limit: float | None,
    output_limit: float | None,
    tokens_limit: float | None,
    reserved: bool,
) -> None:
    """Raise InputError naming the field when the request needs more of a limit than its whole window allows.

    Output counts only where the server reserves `max_tokens` at admission ("reserved" accounting); where it
    counts output as produced, a large `max_tokens` is not refused.
    """
    checks: list[tuple[float | None, int, str, str]] = [(input_limit, input_tokens, "input tokens", "messages")]
    if reserved:
        checks.append((output_limit, output_tokens, "output tokens", "max_tokens"))
        checks.append((tokens_limit, input_tokens + output_tokens, "tokens", "max_tokens"))
    for limit, amount, what, field in checks:
        if limit is not None and amount > limit:
            raise InputError(
                f"this request needs {amount:,.0f} {what} at once, more than the rate limit's whole bucket "
                f"of {limit:,.0f} {what}: the server would refuse it every time",
                field=field,
            )
