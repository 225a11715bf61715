"""Wires the gate, the handler and the limits into a websockets server."""

from __future__ import annotations

from websockets.asyncio.server import Server, ServerConnection, serve

from .auth import TokenVerifier
from .config import Settings
from .handler import ChatHandler
from .handshake import ChatConnection, Gate
from .keys import KeyStore
from .rooms import Rooms

MAX_FRAME_BYTES = 16 * 1024


def build_server(settings: Settings, keys: KeyStore | None = None) -> Server:
    """Returns the (not yet started) server: `async with build_server(...) as server:`."""
    keys = keys or KeyStore(
        settings.jwks_url,
        ttl_s=settings.jwks_ttl_s,
        min_refresh_s=settings.jwks_min_refresh_s,
        timeout_s=settings.jwks_timeout_s,
    )
    handler = ChatHandler(Rooms[ServerConnection](), settings)
    gate = Gate(TokenVerifier(keys), settings.allowed_origins, handler.close_room)
    return serve(
        handler,
        settings.host,
        settings.port,
        process_request=gate.process_request,
        select_subprotocol=gate.select_subprotocol,
        create_connection=ChatConnection,
        # Frames are small and fanned out: per-recipient deflate would cost CPU on every
        # broadcast and a zlib context per connection, for little gain.
        compression=None,
        max_size=MAX_FRAME_BYTES,  # bigger frames: websockets closes with 1009
        ping_interval=20,
        ping_timeout=20,  # a silent peer is dropped within ~40 s
        close_timeout=5,  # shutdown stays well inside docker's 10 s stop grace period
        server_header="parley-chat",
    )
