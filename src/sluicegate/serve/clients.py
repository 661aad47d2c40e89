"""Client keys: who may call the gateway, under which name, with what share of the limits and what budget.

The keys file is JSON Lines, one client per line; keys are stored as SHA-256 digests, never in clear:

    {"name": "notebooks", "key_sha256": "<64 hex digits>", "share": 0.25, "budget": 20.0}

`name` (optional, default `client-<line>`) is what the dashboard and /metrics show. `share` (optional, default
1) weighs this client's turns against others' while several wait; alone, a client may use all the capacity.
`budget` (optional, USD) caps what this client's requests may cost. Make a digest with
`printf %s "$KEY" | sha256sum`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .._exceptions import ConfigError

__all__ = ["ClientSpec", "Clients", "key_digest"]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_LOCAL = "local"


def key_digest(key: str) -> str:
    """The SHA-256 hex digest a keys file stores for `key`."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ClientSpec:
    """One client the gateway knows: its name, share of the limits, and budget in USD (None: no cap)."""

    name: str
    share: float = 1.0
    budget: float | None = None
    digest: str | None = None  # None only for the open (loopback, no keys file) mode


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a client sent: `x-api-key` (Anthropic SDKs) or `Authorization: Bearer` (OpenAI, Anthropic 2.x)."""
    key = headers.get("x-api-key")
    if key:
        return key.strip()
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return None


class Clients:
    """The keys the gateway accepts. Open mode (no keys file, loopback only) accepts any key as client `local`."""

    def __init__(self, specs: list[ClientSpec] | None) -> None:
        self.open = specs is None
        self._by_digest = {spec.digest: spec for spec in specs or [] if spec.digest}
        self._names = [spec.name for spec in specs or []]

    @classmethod
    def load(cls, path: str | Path) -> Clients:
        """Read a keys file; a bad line is a ConfigError naming the line and the field."""
        specs: list[ClientSpec] = []
        seen: set[str] = set()
        where = str(path)
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read the client keys file: {exc.strerror}") from None
        for number, line in enumerate(lines, start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            spec = _parse_line(line, f"{where} line {number}", default_name=f"client-{number}")
            if spec.name in seen:
                raise ConfigError(f"{where} line {number}: field 'name': {spec.name!r} appears twice")
            seen.add(spec.name)
            specs.append(spec)
        if not specs:
            raise ConfigError(f"{where}: no client keys in the file")
        return cls(specs)

    def spec(self, name: str) -> ClientSpec | None:
        """The known client of that name (None in open mode)."""
        return next((spec for spec in self._by_digest.values() if spec.name == name), None)

    @property
    def names(self) -> list[str]:
        return list(self._names) if not self.open else [_LOCAL]

    def authenticate(self, headers: Mapping[str, str]) -> ClientSpec | None:
        """The client these request headers belong to, or None (answer 401)."""
        key = presented_key(headers)
        if self.open:
            label = headers.get("x-sluicegate-client", "")
            return ClientSpec(name=label if _NAME.match(label) else _LOCAL)
        if not key:
            return None
        digest = key_digest(key)
        for known, spec in self._by_digest.items():
            if hmac.compare_digest(known, digest):
                return spec
        return None


def _parse_line(line: str, where: str, *, default_name: str) -> ClientSpec:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a JSON object")
    unknown = set(data) - {"name", "key_sha256", "share", "budget"}
    if unknown:
        raise ConfigError(f"{where}: field {sorted(unknown)[0]!r}: unknown field")
    digest = data.get("key_sha256")
    if not isinstance(digest, str) or not _HEX64.match(digest.lower()):
        raise ConfigError(f"{where}: field 'key_sha256': expected the key's SHA-256 digest, 64 hex digits")
    name = data.get("name", default_name)
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{where}: field 'name': 1-64 letters, digits or _.@-")
    share = data.get("share", 1.0)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1000:
        raise ConfigError(f"{where}: field 'share': a positive number")
    budget = data.get("budget")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int | float) or budget <= 0):
        raise ConfigError(f"{where}: field 'budget': a positive number of USD")
    return ClientSpec(
        name=name, share=float(share), budget=None if budget is None else float(budget), digest=digest.lower()
    )
