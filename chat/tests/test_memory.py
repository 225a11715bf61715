"""What an idle socket keeps once it has joined its room: not its handshake's headers (the
token among them), which were about a third of its memory, nor its ended handshake span."""

from __future__ import annotations

import gc

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from websockets.http11 import Request

from chat import wire
from chat.connection import ChatConnection
from tests.conftest import StartChat
from tests.helpers import Chat, recv_type


def server_side(chat: Chat, user_id: str) -> ChatConnection:
    [conn] = [c for c in chat.server.connections
              if isinstance(c, ChatConnection) and c.identity.user_id == user_id]  # fmt: skip
    return conn


async def test_a_joined_socket_holds_no_request_headers(start_chat: StartChat) -> None:
    chat = await start_chat()
    token = chat.website.mint(sub="idle", name="Idle")
    async with chat.connect(token=token) as ws:
        await recv_type(ws, wire.FRAME_WELCOME)
        conn = server_side(chat, "idle")
        assert conn.request is not None and conn.response is not None
        assert not list(conn.request.headers.raw_items())
        assert not list(conn.response.headers.raw_items())
        # websockets' parser keeps its own reference to the request: nowhere in the process
        # may a request but the client's own still carry the token.
        gc.collect()
        held = [o for o in gc.get_objects() if isinstance(o, Request) and o is not ws.request
                and any(token in value for _, value in o.headers.raw_items())]  # fmt: skip
        assert held == []
        assert conn.identity.user_id == "idle"  # what the revocation checks use stays
        # The socket still works after: a message goes out and comes back.
        await ws.send('{"type": "message", "text": "still here"}')
        assert (await recv_type(ws, wire.FRAME_MESSAGE))["text"] == "still here"


async def test_a_joined_socket_keeps_only_its_handshake_link(
    start_chat: StartChat, spans: InMemorySpanExporter
) -> None:
    chat = await start_chat()
    async with chat.join(sub="idle", name="Idle") as ws:
        await recv_type(ws, wire.FRAME_WELCOME)
        trace = server_side(chat, "idle").handshake_trace
        assert trace is not None
        assert not trace.span.get_span_context().is_valid  # the ended span is not kept
        [handshake] = [s for s in spans.get_finished_spans() if s.name == "ws.handshake"]
        [link] = trace.links
        assert link.context == handshake.get_span_context()
