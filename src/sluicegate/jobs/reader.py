"""Streaming parse of an input JSONL file into RequestItems, with every bad line turned into a named problem."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any, Literal

from .._exceptions import ConfigError
from .._models import ErrorInfo, RequestItem, Result
from ._validate import MAX_DEPTH, PROVIDERS, Bad, hostile, kind_of, validate_params

__all__ = [
    "Defaults",
    "InputProblem",
    "OversizeLine",
    "Provider",
    "fallback_id",
    "iter_lines",
    "params_fingerprint",
    "read_requests",
]

Provider = Literal["anthropic", "openai"]

# The Message Batches API's rule for custom_id; OpenAI batch ids are looser, but one rule keeps files portable.
_ID_RULE = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_OPENAI_URL = "/v1/chat/completions"
_READ_CHUNK = 1 << 20


class _NotJson(ValueError):
    """Python's decoder accepts NaN and Infinity; JSON (and so the APIs) does not."""


def _no_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e999 parses as infinity, which re-encodes as the non-JSON `Infinity`
        raise _NotJson(f"the number {text[:20]} is too large")
    return value


_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


@dataclass(frozen=True, slots=True)
class Defaults:
    """Values from the command line that fill what an input line leaves out."""

    model: str | None = None
    max_tokens: int | None = None
    system: str | None = None


def fallback_id(line: int) -> str:
    """The id under which a line without a usable id is recorded.

    The colon is outside the custom_id rule, so this can never be taken by, or taken from, a real id.
    """
    return f"line:{line}"


@dataclass(frozen=True, slots=True)
class InputProblem:
    """A line that cannot be sent: where it is (1-based line, 0-based index), its id if usable, and why."""

    line: int
    index: int
    custom_id: str | None
    field: str | None
    message: str
    # A line whose id an earlier line already has: the first occurrence runs, this one is reported and skipped, and
    # never gets an output line of its own (so the output keeps exactly one line per id).
    duplicate: bool = False

    @classmethod
    def duplicate_of(cls, item: RequestItem) -> InputProblem:
        """The problem recorded for a line whose id an earlier line already has."""
        return cls(
            line=item.line or 0,
            index=item.index,
            custom_id=item.custom_id,
            field="custom_id",
            message=f"duplicate custom_id {item.custom_id!r}: an earlier line has the same id; this line is skipped",
            duplicate=True,
        )

    def to_result(self) -> Result:
        """The errored result recorded for this line (custom_id falls back to `line:<n>`)."""
        custom_id = self.custom_id
        message = self.message
        if custom_id is None:
            custom_id = fallback_id(self.line)
            message = f"{message} (no usable id: recorded as custom_id {custom_id!r})"
        error = ErrorInfo(kind="invalid_request", message=message, line=self.line, field=self.field)
        return Result(index=self.index, custom_id=custom_id, error=error)


@dataclass(frozen=True, slots=True)
class OversizeLine:
    """Stands in for a line longer than the limit, so the line itself never has to be held in memory."""

    size: int


def iter_lines(stream: IO[bytes], *, max_line_bytes: int = 32 * 2**20) -> Iterator[bytes | OversizeLine]:
    """Yield the lines of a binary stream; a line over `max_line_bytes` is skipped in chunks and reported by size."""
    limit = max_line_bytes + 2  # room for the line ending, which does not count toward the size
    while True:
        line = stream.readline(limit)
        if not line:
            return
        if line.endswith(b"\n") or len(line) < limit:
            yield line
            continue
        size = len(line)
        while not line.endswith(b"\n"):
            line = stream.readline(_READ_CHUNK)
            if not line:
                break
            size += len(line)
        yield OversizeLine(size - _ending_length(line))


def _ending_length(line: bytes) -> int:
    return 2 if line.endswith(b"\r\n") else 1 if line.endswith(b"\n") else 0


def params_fingerprint(params: Mapping[str, Any]) -> str:
    """A stable short hash of the params (canonical JSON with sorted keys), to notice edited inputs."""
    canonical = _CANONICAL.encode(params)
    # surrogatepass: the reader refuses lone surrogates, but a library caller's params may still hold one, and a
    # fingerprint must never be what stops a run.
    return hashlib.blake2b(canonical.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def read_requests(
    lines: Iterable[str | bytes | OversizeLine],
    *,
    defaults: Defaults,
    provider: Provider = "anthropic",
    max_line_bytes: int = 32 * 2**20,
) -> Iterator[RequestItem | InputProblem]:
    """Parse input lines lazily: a RequestItem per good line, an InputProblem per bad one; blank lines skipped.

    Duplicate ids are not detected here (the job store does it, so memory stays bounded).
    """
    if provider not in PROVIDERS:
        raise ConfigError(f"unknown provider {provider!r}: expected 'anthropic' or 'openai'")
    index = 0
    for line_no, raw in enumerate(lines, start=1):
        if isinstance(raw, OversizeLine):
            yield InputProblem(line_no, index, None, None, _oversize(raw.size, max_line_bytes))
            index += 1
            continue
        if not raw.strip():
            continue
        size = len(raw) - _ending_length(raw) if isinstance(raw, bytes) else _utf8_size(raw, max_line_bytes)
        if size > max_line_bytes:
            yield InputProblem(line_no, index, None, None, _oversize(size, max_line_bytes))
        else:
            yield _parse_line(raw, line_no, index, defaults, provider)
        index += 1


def _utf8_size(text: str, limit: int) -> int:
    # A str has at most 4 UTF-8 bytes per character: skip the encode for the (usual) lines that cannot be too long.
    if len(text) * 4 <= limit:
        return len(text)
    return len(text.rstrip("\r\n").encode("utf-8", "surrogatepass"))


def _oversize(size: int, limit: int) -> str:
    return f"line is {size} bytes, over the {limit}-byte limit"


def _parse_line(
    raw: str | bytes, line_no: int, index: int, defaults: Defaults, provider: str
) -> RequestItem | InputProblem:
    try:
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8")
        if line_no == 1:
            raw = raw.removeprefix("\ufeff")
        obj = _DECODER.decode(raw)
    except UnicodeDecodeError as exc:
        return InputProblem(line_no, index, None, None, f"not valid UTF-8 (byte {exc.start})")
    except json.JSONDecodeError as exc:
        return InputProblem(line_no, index, None, None, f"not valid JSON: {exc.msg} at column {exc.colno}")
    except _NotJson as exc:
        return InputProblem(line_no, index, None, None, f"not valid JSON: {exc}")
    except RecursionError:
        return InputProblem(line_no, index, None, None, f"JSON nested deeper than {MAX_DEPTH} levels")
    except ValueError:  # Python refuses integers over 4,300 digits (its guard against quadratic-time parsing)
        return InputProblem(line_no, index, None, None, "a number has more than 4,300 digits")
    unsafe = hostile(obj, raw)
    if unsafe is not None:
        known_id = _readable_id(obj) if isinstance(obj, dict) else None
        return InputProblem(line_no, index, known_id, unsafe.field, unsafe.message)
    if not isinstance(obj, dict):
        return InputProblem(line_no, index, None, None, f"expected a JSON object, got {kind_of(obj)}")
    custom_id: str | None = None
    try:
        id_field, build = _detect_format(obj, provider)
        custom_id = _check_id(obj, id_field)
        params = build(obj, defaults, provider)
        validate_params(params, provider, _prefix(id_field, obj))
    except Bad as bad:
        return InputProblem(line_no, index, custom_id, bad.field, bad.message)
    return RequestItem(index=index, custom_id=custom_id, params=params, line=line_no)


_Builder = Callable[[Mapping[str, Any], Defaults, str], dict[str, Any]]


def _detect_format(obj: Mapping[str, Any], provider: str) -> tuple[str, _Builder]:
    if "body" in obj or "url" in obj or "method" in obj:
        if provider != "openai":
            raise Bad(None, "an OpenAI batch line (custom_id/method/url/body) needs the openai provider")
        return "custom_id", _from_openai_batch
    if "params" in obj:
        return "custom_id", _from_batch
    if "prompt" in obj or "messages" in obj or "id" in obj:
        return ("id" if "id" in obj or "custom_id" not in obj else "custom_id"), _from_shorthand
    if "custom_id" in obj:
        raise Bad("params", 'missing \'params\' (Message Batches format: {"custom_id": ..., "params": {...}})')
    raise Bad(
        None,
        'unknown line format: expected {"custom_id", "params"} or the shorthand {"id", "prompt"}',
    )


def _readable_id(obj: Mapping[str, Any]) -> str | None:
    """The line's id when it is a valid one, else None (for lines refused before their format is known)."""
    for field in ("custom_id", "id"):
        value = obj.get(field)
        if isinstance(value, str) and _ID_RULE.fullmatch(value):
            return value
    return None


def _check_id(obj: Mapping[str, Any], field: str) -> str:
    if field not in obj:
        raise Bad(field, f"missing {field!r}")
    value = obj[field]
    if not isinstance(value, str):
        raise Bad(field, f"{field!r} must be a string, got {kind_of(value)}")
    if not value:
        raise Bad(field, f"{field!r} is empty")
    if not _ID_RULE.fullmatch(value):
        raise Bad(field, f"{field!r} must be 1-64 characters of letters, digits, '_' or '-', got {value[:80]!r}")
    return value


def _prefix(id_field: str, obj: Mapping[str, Any]) -> str:
    if "body" in obj:
        return "body."
    return "params." if id_field == "custom_id" and "params" in obj else ""


def _from_batch(obj: Mapping[str, Any], defaults: Defaults, provider: str) -> dict[str, Any]:
    params = obj["params"]
    if not isinstance(params, dict):
        raise Bad("params", f"'params' must be an object, got {kind_of(params)}")
    return _apply_defaults(dict(params), defaults, provider)


def _from_openai_batch(obj: Mapping[str, Any], defaults: Defaults, provider: str) -> dict[str, Any]:
    method = obj.get("method", "POST")
    if method != "POST":
        raise Bad("method", f"'method' must be \"POST\", got {method!r}")
    url = obj.get("url", _OPENAI_URL)
    if url != _OPENAI_URL:
        raise Bad("url", f"'url' must be {_OPENAI_URL!r} (only Chat Completions is supported), got {url!r}")
    body = obj.get("body")
    if not isinstance(body, dict):
        raise Bad("body", "missing 'body'" if body is None else f"'body' must be an object, got {kind_of(body)}")
    return _apply_defaults(dict(body), defaults, provider)


def _from_shorthand(obj: Mapping[str, Any], defaults: Defaults, provider: str) -> dict[str, Any]:
    params = {k: v for k, v in obj.items() if k not in ("id", "custom_id", "prompt")}
    if "prompt" in obj:
        prompt = obj["prompt"]
        if not isinstance(prompt, str) or not prompt:
            raise Bad("prompt", f"'prompt' must be a non-empty string, got {kind_of(prompt)}")
        params["messages"] = [{"role": "user", "content": prompt}]
    elif "messages" not in obj:
        raise Bad("prompt", "missing 'prompt'")
    if provider == "openai" and "system" in params:
        system = params.pop("system")
        if not isinstance(system, str):
            raise Bad("system", f"'system' must be a string, got {kind_of(system)}")
        messages = params.get("messages")
        if isinstance(messages, list):
            params["messages"] = [{"role": "system", "content": system}, *messages]
    return _apply_defaults(params, defaults, provider)


def _apply_defaults(params: dict[str, Any], defaults: Defaults, provider: str) -> dict[str, Any]:
    if defaults.model is not None and "model" not in params:
        params["model"] = defaults.model
    if provider == "openai":
        if defaults.max_tokens is not None and "max_tokens" not in params and "max_completion_tokens" not in params:
            params["max_completion_tokens"] = defaults.max_tokens
        messages = params.get("messages")
        if defaults.system is not None and isinstance(messages, list):
            first = messages[0] if messages else None
            if not (isinstance(first, dict) and first.get("role") in ("system", "developer")):
                params["messages"] = [{"role": "system", "content": defaults.system}, *messages]
    else:
        if defaults.max_tokens is not None and "max_tokens" not in params:
            params["max_tokens"] = defaults.max_tokens
        if defaults.system is not None and "system" not in params:
            params["system"] = defaults.system
    return params
