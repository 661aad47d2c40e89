"""The Anthropic Message body: its usage (input, cache, output tokens), id and content, for `/v1/messages` and
for batches (`complete_message`), without rate limiting or latency."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sluicegate.emulator import content
from sluicegate.emulator.caching import CacheControlError, CachePlan
from sluicegate.emulator.errors import ApiError
from sluicegate.emulator.prompt import count_tokens, prompt_blocks
from sluicegate.emulator.validation import validate_message_params

if TYPE_CHECKING:
    from sluicegate.emulator.state import EmulatorState


def _input_usage(
    state: EmulatorState, params: Mapping[str, Any], model: str, scope: str = ""
) -> tuple[dict[str, Any], int, CachePlan | None]:
    """Usage input fields, the tokens that count toward ITPM, and the cache plan (or None).

    `scope` isolates cache entries: the API key, as each key is its own organisation here (limits are per key too).
    """
    blocks = prompt_blocks(params, keyed=False)  # once per request: the plan and the count share them
    if state.cache is not None:
        try:
            plan = state.cache.plan(params, model, state.emulated_now(), scope=scope, blocks=blocks)
        except CacheControlError as exc:
            raise ApiError(400, "invalid_request_error", str(exc)) from None
        return plan.usage(), int(plan.rate_limited_tokens), plan
    total = count_tokens(params, blocks)
    usage = {"input_tokens": total, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    return usage, total, None


def _message(
    msg_id: str, model: str, text: str, stop_reason: str | None, stop_seq: str | None, usage: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}] if text else [],
        "stop_reason": stop_reason,
        "stop_sequence": stop_seq,
        "usage": usage,
    }


def _usage(input_usage: Mapping[str, Any], output_tokens: int, service_tier: str) -> dict[str, Any]:
    return {**input_usage, "output_tokens": output_tokens, "service_tier": service_tier}


def _msg_id(state: EmulatorState) -> str:
    return "msg_01" + format(state.rng.getrandbits(110), "022x")


def complete_message(
    state: EmulatorState,
    params: dict[str, Any],
    *,
    service_tier: str = "standard",
    scope: str = "",
    deferred: list[Any] | None = None,
) -> dict[str, Any]:
    """A full Message dict for `params` without rate limiting or latency (batches use this). With `deferred`, the
    cache writes are appended there for the caller to commit later instead of becoming readable now."""
    model = validate_message_params(params, state.config)
    input_usage, _, plan = _input_usage(state, params, model, scope)
    if plan is not None and deferred is not None:
        deferred.append(plan)
    elif plan is not None:
        state.cache.commit(plan, state.emulated_now())
    gen = content.generate(state, params)
    usage = _usage(input_usage, gen.output_tokens, service_tier)
    return _message(_msg_id(state), model, gen.text, gen.stop_reason, gen.stop_sequence, usage)
