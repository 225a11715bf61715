"""Wires the chat: the client port (gate, handler, limits) and the control port, one registry
of rooms behind both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from websockets.asyncio.server import Server, serve

from . import control_http, wire
from .auth import TokenDecoder, TokenVerifier
from .caps import NodeCap
from .config import Settings
from .connection import ChatConnection
from .control import Control
from .handler import ChatHandler
from .handshake import Gate
from .keepalive import Watchdog
from .keys import KeyStore
from .notices import NoticeVerifier
from .revocations import Revocations
from .rooms import Rooms


@dataclass(frozen=True, slots=True)
class Servers:
    chat: Server  # the client port: /healthz and /ws/rooms/{room}
    control: Server  # the control port: the website's notices
    node_cap: NodeCap
    revocations: Revocations


def build_server(
    settings: Settings,
    rooms: Rooms[ChatConnection],
    decoder: TokenDecoder,
    watchdog: Watchdog,
    revocations: Revocations,
    node_cap: NodeCap,
) -> Server:
    """The (not yet started) client-port server."""
    gate = Gate(TokenVerifier(decoder), settings.allowed_origins, node_cap, revocations)
    return serve(
        ChatHandler(rooms, settings, watchdog, revocations),
        settings.host,
        settings.port,
        process_request=gate.process_request,
        select_subprotocol=gate.select_subprotocol,
        create_connection=ChatConnection,
        # Frames are small and fanned out: per-recipient deflate would cost CPU on every
        # broadcast and a zlib context per connection, for little gain.
        compression=None,
        max_size=wire.MAX_FRAME_BYTES,  # bigger frames: websockets closes with 1009
        # websockets' keepalive awaits drain(), so it never drops a client that stopped
        # reading: keepalive.Watchdog pings and cuts instead.
        ping_interval=None,
        close_timeout=5,  # shutdown stays well inside docker's 10 s stop grace period
        server_header="parley-chat",
    )


@asynccontextmanager
async def build_servers(
    settings: Settings, keys: KeyStore | None = None
) -> AsyncIterator[Servers]:
    """Both listeners, started: `async with build_servers(settings) as servers:`. Leaving
    closes the control port first (no command lands mid-shutdown), then every client
    socket with 1001, waiting for their handlers."""
    keys = keys or KeyStore(
        settings.jwks_url,
        ttl_s=settings.jwks_ttl_s,
        min_refresh_s=settings.jwks_min_refresh_s,
        timeout_s=settings.jwks_timeout_s,
    )
    decoder = TokenDecoder(keys)
    rooms = Rooms[ChatConnection]()
    revocations = Revocations(settings.revocation_memory_s)
    node_cap = NodeCap(settings.max_connections)
    control = Control(rooms, revocations)
    watchdog = Watchdog(settings.ping_interval_s, settings.ping_timeout_s,
                        settings.send_buffer_bytes)  # fmt: skip
    async with (
        watchdog.running(),
        build_server(settings, rooms, decoder, watchdog, revocations, node_cap) as chat,
        control_http.build(
            control, NoticeVerifier(decoder), settings.host, settings.control_port
        ) as control_server,
    ):
        yield Servers(chat, control_server, node_cap, revocations)
