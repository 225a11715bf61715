"""Slow consumers: keepalive pings that never wait for a write, a bound on each connection's
unsent bytes, and the cut (4008) for a client that falls behind (docs/design.md §5, "Limits").

websockets' broadcast() has no backpressure and its own keepalive awaits drain(), so a client
that never reads would never be dropped while its write buffer grows without end. Instead one
task per server (not one per connection) ticks about once a second, a slice of connections
at a time: it pings each connection that is due, synchronously, as broadcast() writes, and
cuts a connection whose ping stays unanswered for PING_TIMEOUT_S or whose transport holds
more than SEND_BUFFER_BYTES that the kernel has not taken. Every write of a broadcast checks
the same bound first.

Behind nginx the kernel's and nginx's buffers absorb a stalled client's data first, so the
buffer bound rarely trips there: the pong timeout is what catches it (the ping waits behind
the unread data)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Iterable

import structlog
from websockets.protocol import State

from . import metrics, prepared, wire
from .connection import ChatConnection

log = structlog.get_logger(__name__)

# After the close frame, how long a cut client gets to answer before the transport is aborted:
# never wait for a client that does not read.
CUT_GRACE_S = 1.0
BUFFER, PONG = "buffer", "pong"  # the {reason} of chat_slow_consumers_total
# Connections a tick checks before the loop runs again. A whole tick at once, over 5,000
# sockets with a tenth of them due a ping, held messages back: the many-rooms benchmark's
# p99 was 23.5 ms, and 6-7 ms sliced (docs/design.md section 5, "Slow consumers").
TICK_SLICE = 256


class Watchdog:
    def __init__(self, ping_interval_s: float, ping_timeout_s: float, buffer_bytes: int) -> None:
        self._interval = ping_interval_s
        self._timeout = ping_timeout_s
        self._bound = buffer_bytes
        # Fine enough for short test settings; once a second with the defaults.
        self._tick_s = min(1.0, ping_interval_s / 4, ping_timeout_s / 4)
        self._conns: set[ChatConnection] = set()
        self._cork = prepared.Cork()

    @property
    def bound(self) -> int:
        """SEND_BUFFER_BYTES: the bytes a connection's transport may hold."""
        return self._bound

    def watch(self, conn: ChatConnection) -> None:
        conn.next_ping_at = time.monotonic() + self._interval
        self._conns.add(conn)

    def unwatch(self, conn: ChatConnection) -> None:
        self._conns.discard(conn)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Watchdog]:
        task = asyncio.create_task(self._run(), name="keepalive-watchdog")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._tick_s)
            conns = list(self._conns)
            for start in range(0, len(conns), TICK_SLICE):
                if start:
                    await asyncio.sleep(0)  # messages go out between slices
                try:
                    self.tick(conns[start : start + TICK_SLICE], time.monotonic())
                except Exception:  # a bug here must not end keepalive for the whole node
                    log.exception("keepalive tick failed")

    def tick(self, conns: Iterable[ChatConnection], now: float) -> None:
        for conn in conns:
            if conn.protocol.state is not State.OPEN:
                continue
            if self.over_bound(conn):
                self.cut(conn, BUFFER)
            elif conn.ping_payload is not None:
                if now - conn.ping_sent_at > self._timeout:
                    self.cut(conn, PONG)
            elif now >= conn.next_ping_at:
                self._ping(conn, now)

    def _ping(self, conn: ChatConnection, now: float) -> None:
        payload = os.urandom(8)  # unguessable: only a client that read the ping can answer
        conn.ping_payload, conn.ping_sent_at = payload, now
        conn.next_ping_at = now + self._interval
        try:
            conn.protocol.send_ping(payload)
            conn.send_data()  # no drain(): the transport buffers, the bound above limits it
        except Exception as exc:  # the transport is going away; connection_lost follows
            log.debug("keepalive ping not written", error=str(exc))

    def over_bound(self, conn: ChatConnection) -> bool:
        # What the transport could not hand to the kernel, the welcome's rest aside. Frames
        # queued for the connection's turn are not counted: they are bytes its whole room
        # shares, and a burst queued at once (more than the bound) is no sign that the client
        # reads slowly. Written at its turn, what the kernel refuses counts at the next check.
        buffered = conn.transport.get_write_buffer_size()
        return buffered > self._bound and buffered - conn.welcome_unsent() > self._bound

    def welcome(self, conn: ChatConnection, frame: str) -> None:
        """The first frame of a socket, however big its room: whatever is left of it in the
        chat's buffers is allowed on top of the bound, so a joiner is not cut for the member
        list it was sent, and the frames after it are held to the bound all the same."""
        if self.broadcast([conn], frame):
            conn.welcome_end = conn.bytes_written + conn.corked_bytes  # it is the last queued

    def broadcast(self, recipients: Iterable[ChatConnection], frame: str) -> int:
        """Like websockets' broadcast(), without a task or an await per recipient, but the
        frame is serialised once and each open recipient's copy is queued for one write at
        its turn in the flush (chat/prepared.py); a recipient already over the
        buffer bound (`over_bound`) is cut instead. Returns how many got it."""
        data = prepared.prepare(frame)
        written = 0
        for conn in recipients:
            if not prepared.writable(conn):  # closing or closed: skipped
                continue
            if self.over_bound(conn):
                self.cut(conn, BUFFER)
                continue
            try:
                self._cork.write(conn, data)
            except Exception as exc:
                log.warning("broadcast write failed", error=str(exc))
                continue
            written += 1
        return written

    def cut(self, conn: ChatConnection, reason: str) -> None:
        """Close frame 4008, then abort the transport after CUT_GRACE_S unless the client
        answered: the frame waits behind whatever the client has not read."""
        if conn.cut_reason is not None:
            return
        conn.cut_reason = reason
        buffered = conn.unsent_bytes()
        metrics.SLOW_CONSUMERS.labels(reason).inc()
        log.warning("slow consumer cut", reason=reason, buffered_bytes=buffered,
                    request_id=conn.request_id, user_id=conn.identity.user_id,
                    room=conn.identity.room)  # fmt: skip
        try:
            if conn.protocol.state is State.OPEN:
                conn.protocol.send_close(wire.CLOSE_SLOW_CONSUMER, "slow consumer")
                conn.send_data()
        except Exception as exc:
            log.debug("close frame not written", error=str(exc))
        conn.loop.call_later(CUT_GRACE_S, _abort, conn)


def _abort(conn: ChatConnection) -> None:
    if not conn.connection_lost_waiter.done():
        conn.transport.abort()
