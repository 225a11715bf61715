"""Wires the chat: the client port (gate, handler, limits), the bus (room channels between
replicas, the website's control channel), one registry of rooms behind both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from websockets.asyncio.server import Server, serve

from . import channels, wire
from .auth import TokenDecoder, TokenVerifier
from .bus import Bus
from .caps import NodeCap
from .config import Settings
from .connection import ChatConnection
from .control import Control
from .control_bus import ControlChannel
from .handler import ChatHandler
from .handshake import Gate
from .keepalive import Watchdog
from .keys import KeyStore
from .notices import NoticeVerifier
from .relay import Relay
from .revocations import Revocations
from .rooms import Rooms


@dataclass(frozen=True, slots=True)
class Servers:
    chat: Server  # the client port: /healthz, /readyz and /ws/rooms/{room}
    bus: Bus
    relay: Relay
    control: ControlChannel
    node_cap: NodeCap
    revocations: Revocations


def build_server(
    settings: Settings,
    rooms: Rooms[ChatConnection],
    decoder: TokenDecoder,
    watchdog: Watchdog,
    revocations: Revocations,
    node_cap: NodeCap,
    bus: Bus,
    relay: Relay,
) -> Server:
    """The (not yet started) client-port server."""
    gate = Gate(TokenVerifier(decoder), settings.allowed_origins, node_cap, revocations,
                settings.node_id, lambda: bus.up)  # fmt: skip
    return serve(
        ChatHandler(rooms, settings, watchdog, revocations, relay),
        settings.host,
        settings.port,
        backlog=settings.listen_backlog,  # asyncio's default of 100 drops connect bursts
        process_request=gate.process_request,
        process_response=gate.process_response,
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
    """Everything, started: `async with build_servers(settings) as servers:`. Leaving closes
    every client socket with 1001 and waits for their handlers (whose leaves still go out on
    the bus), then the bus."""
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
    control = ControlChannel(Control(rooms, revocations), NoticeVerifier(decoder))
    watchdog = Watchdog(settings.ping_interval_s, settings.ping_timeout_s,
                        settings.send_buffer_bytes)  # fmt: skip
    relay: Relay | None = None

    def route(channel: str, data: bytes) -> None:
        if channel == channels.CONTROL:
            control.receive(data)
        elif relay is not None:
            relay.receive(channel, data)

    bus = Bus(host=settings.redis_host, port=settings.redis_port,
              password=settings.redis_password(), node=settings.node_id,
              timeout_s=settings.bus_timeout_s, backoff_max_s=settings.bus_backoff_max_s,
              on_message=route)  # fmt: skip
    relay = Relay(bus, rooms, watchdog, presence_ttl_s=settings.presence_ttl_s,
                  heartbeat_s=settings.presence_heartbeat_s, sweep_s=settings.presence_sweep_s,
                  link_timeout_s=settings.bus_timeout_s,
                  presence_coalesce_s=settings.presence_coalesce_ms / 1000,
                  presence_frames_per_s=settings.presence_frames_per_s)  # fmt: skip
    await bus.subscribe(channels.CONTROL)  # wanted from the first session on
    async with (
        bus.running(),
        relay.running(),
        watchdog.running(),
        build_server(settings, rooms, decoder, watchdog, revocations, node_cap, bus,
                     relay) as chat,  # fmt: skip
    ):
        yield Servers(chat, bus, relay, control, node_cap, revocations)
