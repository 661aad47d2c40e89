"""Checks of one input line's request against what the APIs document, each failure naming its field."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "MAX_DEPTH",
    "MAX_MESSAGES",
    "MAX_OUTPUT_TOKENS",
    "PROVIDERS",
    "Bad",
    "hostile",
    "kind_of",
    "validate_params",
]

_ROLES: dict[str, frozenset[str]] = {
    "anthropic": frozenset({"user", "assistant"}),
    "openai": frozenset({"user", "assistant", "system", "developer", "tool"}),
}
PROVIDERS = frozenset(_ROLES)
# The largest max_tokens any current model accepts (Claude Opus 4.6 and GPT-5: 128,000 output tokens). A model with a
# lower limit answers a larger value with a 400, which also ends the item at once; a value above every model's limit
# is refused here so it is named before anything is sent.
MAX_OUTPUT_TOKENS = 128_000
MAX_MESSAGES = 100_000  # the Messages API's documented maximum per request
# Nesting deeper than this is refused: no request the APIs document needs it, and far deeper JSON exhausts Python's
# recursion limit when it is encoded again (to fingerprint it, or to send it).
MAX_DEPTH = 100
_TEMPERATURE = {"anthropic": 1.0, "openai": 2.0}
# A \uD800-\uDFFF escape: the only way a JSON line can carry a surrogate (UTF-8 input cannot), so the costly walk
# over the strings runs only for lines that have one.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


class Bad(Exception):
    """A validation failure inside one line: the field (dotted path) and the reason."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def kind_of(value: object) -> str:
    """The JSON kind of a value, for messages ("a string", "an array", ...)."""
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array"}.get(
        type(value), "an object"
    )


def hostile(obj: object, raw: str) -> Bad | None:
    """What makes a decoded line unsafe to re-encode: nesting past MAX_DEPTH, or a lone surrogate (not UTF-8)."""
    brackets = raw.count("[") + raw.count("{")
    check_strings = _SURROGATE_ESCAPE.search(raw) is not None
    if brackets <= MAX_DEPTH and not check_strings:
        return None
    stack: list[tuple[object, str, int]] = [(obj, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            top = re.split(r"[.\[]", path, maxsplit=1)[0]  # the field it starts in; the full path is 100 steps
            return Bad(top or None, f"JSON nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            for key, child in value.items():
                if check_strings and not _encodable(key):
                    return Bad(path or None, f"key {key!r} holds a lone surrogate, which is not valid UTF-8")
                stack.append((child, f"{path}.{key}" if path else key, depth + 1))
        elif isinstance(value, list):
            stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(value))
        elif check_strings and isinstance(value, str) and not _encodable(value):
            return Bad(path or None, "holds a lone surrogate (an unpaired \\ud800-\\udfff escape), not valid UTF-8")
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def validate_params(params: Mapping[str, Any], provider: str, prefix: str) -> None:
    """Raise Bad for the first field the API would refuse: model, max_tokens range, temperature, messages."""
    model = params.get("model")
    if model is None:
        raise Bad(f"{prefix}model", "missing 'model' (set it in the line or give a default model)")
    if not isinstance(model, str) or not model:
        raise Bad(f"{prefix}model", f"'model' must be a non-empty string, got {kind_of(model)}")
    token_keys = ("max_completion_tokens", "max_tokens") if provider == "openai" else ("max_tokens",)
    present = [k for k in token_keys if k in params]
    if not present and provider == "anthropic":
        raise Bad(f"{prefix}max_tokens", "missing 'max_tokens' (set it in the line or give a default)")
    for key in present:
        value = params[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise Bad(f"{prefix}{key}", f"{key!r} must be a positive integer, got {_short(value)}")
        if value > MAX_OUTPUT_TOKENS:
            raise Bad(
                f"{prefix}{key}",
                f"{key!r} is {_short(value)}, over {MAX_OUTPUT_TOKENS:,} (the largest output any model allows)",
            )
    _validate_temperature(params, provider, prefix)
    if provider == "anthropic" and "system" in params and not isinstance(params["system"], str | list):
        raise Bad(f"{prefix}system", f"'system' must be a string or a list of blocks, got {kind_of(params['system'])}")
    _validate_messages(params.get("messages"), provider, f"{prefix}messages")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


def _validate_temperature(params: Mapping[str, Any], provider: str, prefix: str) -> None:
    if "temperature" not in params:
        return
    value = params["temperature"]
    top = _TEMPERATURE[provider]
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= top:
        raise Bad(f"{prefix}temperature", f"'temperature' must be a number from 0 to {top:g}, got {_short(value)}")


def _validate_messages(messages: Any, provider: str, field: str) -> None:
    if messages is None:
        raise Bad(field, "missing 'messages'")
    if not isinstance(messages, list) or not messages:
        got = kind_of(messages) if messages else "an empty list"
        raise Bad(field, f"'messages' must be a non-empty list, got {got}")
    if len(messages) > MAX_MESSAGES:
        raise Bad(field, f"{len(messages):,} messages, over the API's limit of {MAX_MESSAGES:,}")
    roles = _ROLES[provider]
    for i, message in enumerate(messages):
        where = f"{field}[{i}]"
        if not isinstance(message, dict):
            raise Bad(where, f"each message must be an object, got {kind_of(message)}")
        role = message.get("role")
        if role not in roles:
            allowed = ", ".join(sorted(roles))
            raise Bad(f"{where}.role", f"'role' must be one of {allowed}, got {_short(role)}")
        content = message.get("content")
        # An OpenAI assistant turn that only calls tools carries content null.
        if content is None and not (provider == "openai" and "tool_calls" in message):
            raise Bad(f"{where}.content", "missing 'content'")
        if content is not None and not isinstance(content, str | list):
            raise Bad(f"{where}.content", f"'content' must be a string or a list of blocks, got {kind_of(content)}")
        if isinstance(content, list):
            _validate_blocks(content, f"{where}.content")


def _validate_blocks(blocks: list[Any], field: str) -> None:
    """Each content block is an object with a string 'type'; a text block has string 'text'.

    Other block types are the API's to check: new ones appear, and refusing them here would block valid requests.
    """
    for j, block in enumerate(blocks):
        where = f"{field}[{j}]"
        if not isinstance(block, dict):
            raise Bad(where, f"each content block must be an object, got {kind_of(block)}")
        kind = block.get("type")
        if not isinstance(kind, str) or not kind:
            raise Bad(f"{where}.type", f"a content block needs a 'type' string, got {_short(kind)}")
        if kind == "text" and not isinstance(block.get("text"), str):
            raise Bad(f"{where}.text", f"a text block needs a 'text' string, got {kind_of(block.get('text'))}")
