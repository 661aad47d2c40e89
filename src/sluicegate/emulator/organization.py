"""The organization id an API key belongs to: a stable uuid derived from the key (never containing it)."""

from __future__ import annotations

import hashlib
import uuid
from functools import lru_cache

# Fixed, so a key maps to the same organization in every emulator run.
_NAMESPACE = uuid.UUID("5d1c3a8e-7f2b-4c6d-9e0a-b1c2d3e4f5a6")

HEADER = "anthropic-organization-id"


@lru_cache(maxsize=4096)
def organization_id(api_key: str) -> str:
    """The uuid the API reports in `anthropic-organization-id` and in rate-limit messages for this key.

    Each key is its own organization in the emulator (limits and cache entries are per key too). The uuid5 name
    is a SHA-256 digest of the key, so neither the key nor a cheap hash of it can be read back from the id.
    Cached: the hot path pays one dictionary lookup per request.
    """
    digest = hashlib.sha256(api_key.encode("utf-8")).hexdigest()
    return str(uuid.uuid5(_NAMESPACE, digest))
