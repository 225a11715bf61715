"""The chat's server connection: who is on the other end, its keepalive state, and what its
end releases (its place under the node cap)."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from . import telemetry
from .auth import Identity


class ChatConnection(ServerConnection):
    """A server connection that knows who is on the other end (set by the gate)."""

    # Slots: websockets' own attributes fill the instance's inline values; ours on top would
    # turn them into a dict of ~1.6 KiB per socket.
    __slots__ = ("bytes_written", "corked", "corked_bytes", "cut_reason", "handshake_trace",
                 "identity", "next_ping_at", "on_lost", "ping_payload", "ping_sent_at",
                 "request_id", "welcome_end")  # fmt: skip

    identity: Identity  # set by the gate before the upgrade

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request_id = ""
        self.handshake_trace: telemetry.RequestTrace | None = None  # not for /healthz
        # Keepalive (keepalive.Watchdog): the payload of our unanswered ping, when it was
        # sent, and when the next one is due. One ping at a time: a pong for it proves the
        # client has read everything written before it.
        self.ping_payload: bytes | None = None
        self.ping_sent_at = 0.0
        self.next_ping_at = 0.0
        self.cut_reason: str | None = None  # set once when cut as a slow consumer
        # Called once when the TCP connection is gone (the node cap's release).
        self.on_lost: Callable[[], None] | None = None
        # Broadcast frames queued until this connection's turn in the flush (prepared.Cork),
        # written in one go.
        self.corked: list[bytes] | None = None
        self.corked_bytes = 0
        # Bytes handed to the transport so far, and how far into them the welcome ends: what
        # is left of the welcome in the transport's buffer (the oldest bytes are sent first)
        # is allowed on top of SEND_BUFFER_BYTES (Watchdog.over_bound), since a big room's
        # member list alone may exceed the bound.
        self.bytes_written = 0
        self.welcome_end = 0

    def unsent_bytes(self) -> int:
        """What the client has yet to get: the transport's buffer and the queued frames."""
        return self.transport.get_write_buffer_size() + self.corked_bytes

    def welcome_unsent(self) -> int:
        """The welcome's bytes not yet handed to the kernel (0 once they all are)."""
        sent = self.bytes_written - self.transport.get_write_buffer_size()
        return max(0, self.welcome_end - sent)

    def uncork(self) -> None:
        """Writes the queued broadcast frames, one write for all of them."""
        corked, size, self.corked, self.corked_bytes = self.corked, self.corked_bytes, None, 0
        if corked and not self.transport.is_closing():  # aborted or lost: nobody to write to
            self.transport.write(corked[0] if len(corked) == 1 else b"".join(corked))
            self.bytes_written += size

    response_held: bool = False  # the 101 has been queued (below), not written at once

    def send_data(self) -> None:
        # Everything websockets writes (pongs, close frames, ws.send(), our pings) goes
        # through here: queued broadcast frames go first, so nothing ever overtakes them.
        if not self.response_held and self.protocol.state is State.OPEN:
            self.response_held = True
            if all(self.protocol.writes):  # no end of stream (b"") to act on: only the 101
                self._hold_response()
                return
        if self.corked:
            self.uncork()
        self.bytes_written += sum(map(len, self.protocol.writes))  # what super() writes
        super().send_data()

    def _hold_response(self) -> None:
        """Queues the 101, the first thing written once the protocol is OPEN, to be written
        at the end of this loop iteration: the handler runs next in this same task and, when
        the room is linked already, queues the welcome in this iteration too, so both leave
        in one write (one syscall, one segment), the costliest part of a handshake after the
        signature check. A room still being linked gets its 101 alone, as before."""
        data = self.protocol.data_to_send()
        self.corked = [*data, *(self.corked or ())]
        self.corked_bytes += sum(map(len, data))
        self.loop.call_soon(self.uncork)

    async def handshake(self, *args: Any, **kwargs: Any) -> None:
        try:
            await super().handshake(*args, **kwargs)
        except BaseException as exc:  # open_timeout, cancellation
            if self.handshake_trace is not None:
                self.handshake_trace.end(error=exc)
            raise
        if (ht := self.handshake_trace) is None:
            return
        status = None if self.response is None else self.response.status_code
        if status != HTTPStatus.SWITCHING_PROTOCOLS or self.protocol.state is not State.OPEN:
            # Rejected (by the gate, by websockets, 503 while shutting down) or client gone.
            ht.end(status)
        # Accepted: the handler ends the span once the socket has joined its room.

    def forget_handshake(self) -> None:
        """Empties the upgrade's request and response headers once the socket has joined its
        room: nothing reads them later, and they (the token among them) were about a third of
        an idle socket's memory. The objects stay: websockets takes `request is None` to mean
        that no handshake has arrived yet, and its parser keeps the request for the socket's
        life anyway."""
        for message in (self.request, self.response):
            if message is not None:
                message.headers.clear()

    def acknowledge_pings(self, data: bytes) -> None:
        # Our keepalive pings never go through ping(), so websockets' own bookkeeping
        # (pending_pings) never sees them: record the pong here, then let it do the rest.
        if self.ping_payload is not None and data == self.ping_payload:
            self.ping_payload = None
        super().acknowledge_pings(data)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        on_lost, self.on_lost = self.on_lost, None
        if on_lost is not None:
            on_lost()
