"""What the library reads from the environment: the official SDKs' own variables, for what the caller left unset."""

from __future__ import annotations

import os
from collections.abc import Mapping

from ._exceptions import ConfigError

__all__ = ["ENVIRONMENT_VARIABLES", "resolve_endpoint"]

# (key variable, base-URL variable) per provider: the names `anthropic.Anthropic()` and `openai.OpenAI()` read,
# so code moved from an SDK client to the Engine keeps working with the same shell.
ENVIRONMENT_VARIABLES = {
    "anthropic": ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"),
    "openai": ("OPENAI_API_KEY", "OPENAI_BASE_URL"),
}


def resolve_endpoint(
    provider: str, api_key: str | None, base_url: str | None, environ: Mapping[str, str] | None = None
) -> tuple[str, str | None]:
    """(api_key, base_url): an explicit argument wins; None falls back to the provider's variable, as the SDKs do.

    Read once, at construction, so an Engine never changes endpoint under a running job. A missing key is a
    ConfigError naming the variable and the way to try without an account.
    """
    env = os.environ if environ is None else environ
    names = ENVIRONMENT_VARIABLES.get(provider)
    if names is None:  # a third-party provider object: nothing is implied, everything is passed
        if not api_key:
            raise ConfigError(f"api_key is required for provider {provider!r}")
        return api_key, base_url
    key_var, url_var = names
    if api_key is None:
        api_key = env.get(key_var) or None
    if base_url is None:
        base_url = env.get(url_var) or None
    if not api_key:
        raise ConfigError(
            f"no API key: pass api_key= or set {key_var} (no account? run `sluicegate emulate` and set the "
            f"{url_var} and {key_var} it prints)"
        )
    return api_key, base_url
