"""Entry point: `python -m chat`."""

from __future__ import annotations

import asyncio
import signal
import sys

import structlog
import uvloop
from prometheus_client import start_http_server

from . import gc_tuning, telemetry
from . import log as logsetup
from .config import Settings, load_settings
from .server import build_servers

log = structlog.get_logger(__name__)


async def run(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    start_http_server(settings.metrics_port, addr=settings.host)
    async with build_servers(settings) as servers:
        redis = f"{settings.redis_host}:{settings.redis_port}"
        log.info("chat listening", port=settings.port, metrics_port=settings.metrics_port,
                 node=settings.node_id, redis=redis, loop=type(loop).__module__,
                 backlog=settings.listen_backlog)  # fmt: skip
        await stop.wait()
        # Leaving the block closes every socket with 1001 and waits for the handlers.
        log.info("chat stopping", connections=len(servers.chat.connections))


def main() -> None:
    settings = load_settings()
    settings.redis_password()  # readable, or stop here with a message naming the variable
    logsetup.configure(settings.log_level)
    tracing = telemetry.configure()
    log.info("chat starting", host=settings.host, port=settings.port,
             jwks_url=settings.jwks_url, trace_export=telemetry.export_enabled())  # fmt: skip
    gc_tuning.tune()
    try:
        # uvloop: the same asyncio API with transports in C, cheaper per write and per
        # handshake (docs/design.md §11).
        asyncio.run(run(settings), loop_factory=uvloop.new_event_loop)
    except Exception:
        log.exception("chat crashed")
        tracing.shutdown()
        sys.exit(1)
    tracing.shutdown()
    log.info("chat stopped")


if __name__ == "__main__":
    main()
