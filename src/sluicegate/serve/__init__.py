"""`sluicegate serve`: an API gateway that gives every caller one shared rate limiter, queue and retry policy."""

from .app import build_app
from .clients import Clients, ClientSpec, key_digest
from .gateway import Gateway, GatewayConfig

__all__ = ["ClientSpec", "Clients", "Gateway", "GatewayConfig", "build_app", "key_digest"]
