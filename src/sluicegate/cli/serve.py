"""`sluicegate serve`: the rate-limit-aware API gateway, with its dashboard and /metrics."""

from __future__ import annotations

import contextlib
import gc
import ipaddress
import logging
import math
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Literal

import click

from sluicegate.cli._options import cost_cap, prices_option, shared_limits_options
from sluicegate.cli.run import _EMULATED_MINUTE, _endpoint
from sluicegate.limits.limiter import Limits

if TYPE_CHECKING:
    import uvicorn

    from sluicegate.pricing import PriceTable


def is_loopback(host: str) -> bool:
    """True for names and addresses that only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _announcing_server(config: uvicorn.Config, sock: socket.socket, host: str) -> uvicorn.Server:
    """A uvicorn server that prints the listening line once it accepts connections, and exits 0 after a drained
    SIGTERM (uvicorn itself re-raises the signal after its graceful shutdown); Ctrl-C exits 130."""
    from sluicegate.serve.server import ReadyServer

    def announce() -> None:
        # Everything built so far (modules, the app, the engine) lives as long as the server: out of the
        # collector's sight, each collection scans only what requests allocate, so its pauses stay short.
        gc.collect()
        gc.freeze()
        shown = f"[{host}]" if ":" in host else host
        click.echo(f"sluicegate serve: listening on http://{shown}:{sock.getsockname()[1]}")
        sys.stdout.flush()

    class _Server(ReadyServer):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            caught: list[int] = []

            def handle(sig: int, frame: FrameType | None) -> None:
                caught.append(sig)
                self.handle_exit(sig, frame)

            previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
            if signal.SIGINT in caught:
                sys.exit(130)

    return _Server(config, announce)


@click.command()
@click.option("--base-url", default=None, help="Upstream API base URL (default: the provider's, or *_BASE_URL).")
@click.option("--provider", type=click.Choice(["anthropic", "openai"]), default="anthropic", show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="0 picks a free port.")
@click.option(
    "--client-keys",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="JSON Lines of accepted client keys (SHA-256 digests, name, share, budget). Required off loopback.",
)
@click.option("--rpm", type=float, default=None, help="Requests per minute (default: learnt from headers).")
@click.option("--itpm", type=float, default=None, help="Input tokens per minute (default: learnt).")
@click.option("--otpm", type=float, default=None, help="Output tokens per minute (default: learnt).")
@click.option("--max-concurrency", type=click.IntRange(min=1), default=None, help="Cap on requests in flight.")
@click.option(
    "--max-cost",
    type=float,
    default=None,
    callback=cost_cap,
    help="Refuse requests that could take spend past this (USD).",
)
@prices_option
@click.option(
    "--max-wait",
    type=click.FloatRange(min=0),
    default=300.0,
    show_default=True,
    help="Seconds a request may wait for the rate limit before a 429 (x-sluicegate-max-wait overrides).",
)
@click.option("--max-queue", type=click.IntRange(min=1), default=10_000, show_default=True, help="Waiting requests.")
@click.option(
    "--drain-timeout",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="On SIGTERM, seconds to let requests in flight finish before closing them.",
)
@click.option("--access-log", is_flag=True, help="One line per request on stderr (client name, status, times).")
@click.option("--emulate", is_flag=True, help="Use the built-in emulator as upstream even if a key is set.")
@click.option("--tier", type=click.IntRange(1, 4), default=1, show_default=True, help="Emulator tier.")
@click.option("--minute", type=float, default=None, help="Real seconds per rate-limit minute (emulators only).")
@click.option("--fault", "faults", multiple=True, help="Emulator fault KIND:PROB or KIND@START-END.")
@shared_limits_options
def serve(
    base_url: str | None,
    provider: Literal["anthropic", "openai"],
    host: str,
    port: int,
    client_keys: Path | None,
    rpm: float | None,
    itpm: float | None,
    otpm: float | None,
    max_concurrency: int | None,
    max_cost: float | None,
    prices: PriceTable | None,
    max_wait: float,
    max_queue: int,
    drain_timeout: float,
    access_log: bool,
    emulate: bool,
    tier: int,
    minute: float | None,
    faults: tuple[str, ...],
    shared_limits: str | None,
    shared_limits_name: str | None,
    shared_limits_fallback: bool | int,
) -> None:
    """Serve the Anthropic (or OpenAI) API on HOST:PORT in front of one shared rate limiter.

    Point any SDK at it by changing only its base URL. Requests wait in a queue for the account's rate limits
    instead of getting 429s; upstream 429/529/5xx and dropped connections are retried inside. GET / is a live
    dashboard, GET /metrics is Prometheus text.

    Example: sluicegate serve --port 8080
    """
    import uvicorn

    from sluicegate._exceptions import ConfigError

    try:
        from sluicegate.serve import Clients, GatewayConfig, build_app
        from sluicegate.serve.server import KEEP_ALIVE, bind
    except ImportError as exc:  # FastAPI is the `serve` extra
        raise click.UsageError(f"sluicegate serve needs FastAPI: pip install 'sluicegate[serve]' ({exc})") from exc

    if client_keys is None and not is_loopback(host):
        raise click.UsageError(
            f"refusing to listen on {host} without --client-keys: anyone who can reach it would spend your API "
            "key. Give a keys file, or listen on 127.0.0.1."
        )
    try:
        clients = Clients.load(client_keys) if client_keys is not None else Clients(None)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--client-keys") from exc
    limits = None
    if rpm or itpm or otpm:
        limits = Limits(requests_per_minute=rpm, input_tokens_per_minute=itpm, output_tokens_per_minute=otpm)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log = logging.getLogger("sluicegate")
    log.addHandler(handler)
    log.setLevel(logging.INFO if access_log else logging.WARNING)
    emulator_minute = minute or _EMULATED_MINUTE
    try:
        sock = bind(host, port)
    except OSError as exc:
        raise click.UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    with _endpoint(provider, base_url, emulate, tier, emulator_minute, faults) as (url, key, _label, emulated):
        default_url = "https://api.anthropic.com" if provider == "anthropic" else "https://api.openai.com/v1"
        config = GatewayConfig(
            provider=provider,
            base_url=url or default_url,
            api_key=key,
            clients=clients,
            limits=limits,
            max_concurrency=max_concurrency,
            minute=emulator_minute if emulated else (minute or 60.0),
            max_wait=max_wait,
            max_queue=max_queue,
            max_cost=max_cost,
            prices=prices,
            shared_limits=shared_limits,
            shared_limits_name=shared_limits_name,
            shared_limits_fallback=shared_limits_fallback,
            emulated=emulated,
        )
        uv_config = uvicorn.Config(
            build_app(config),
            log_level="warning",
            access_log=False,
            backlog=4096,
            timeout_graceful_shutdown=math.ceil(drain_timeout),
            timeout_keep_alive=KEEP_ALIVE,
            lifespan="on",
        )
        try:
            _announcing_server(uv_config, sock, host).run(sockets=[sock])
        finally:
            sock.close()
