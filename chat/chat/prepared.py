"""Prepared frames: a broadcast's text frame serialised once by websockets' own framing, the
same bytes written to every recipient's transport, all of a recipient's frames queued until
its turn in one write (docs/design.md §11, "Prepared frames").

Why this is safe with websockets' protocol state, for a recipient that `writable()` accepts:
- Server frames are unmasked and the server runs without extensions (compression=None), so
  `Frame.serialize()` gives the very bytes `protocol.send_text()` would, for every recipient
  (with an extension negotiated, `Cork.write()` lets websockets encode the frame instead).
- Nothing can be pending in the protocol's output (`protocol.writes`): websockets flushes it
  with `send_data()` right after every `send_*()` and every `receive_data()`, and so does our
  keepalive. `Cork.write()` still flushes anything found there first, and every later
  `send_data()` writes the queued frames first (ChatConnection), so order never changes.
- No fragmented message is ever in progress: the chat only sends whole str frames; a recipient
  that were mid-fragment (`send_in_progress`, `expect_continuation_frame`) is skipped, as
  websockets' own broadcast() skips it.
- A recipient that is not OPEN (closing, closed) is skipped: after our close frame or the
  client's, not one more data frame may follow. Frames queued while it was open go out
  before any close frame (send_data), or not at all once the transport is closing.
The sans-IO protocol keeps no count of bytes sent, so bypassing send_text() leaves nothing of
its state behind."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import structlog
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from .connection import ChatConnection

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Prepared:
    payload: bytes  # the UTF-8 text
    frame: bytes  # the whole server frame carrying it


def prepare(text: str) -> Prepared:
    """The server's (unmasked, uncompressed) text frame carrying `text`."""
    payload = text.encode()
    return Prepared(payload, Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[]))


def writable(conn: ChatConnection) -> bool:
    """Whether a frame may be written to this connection now: open, no fragment pending."""
    protocol = conn.protocol
    return (
        protocol.state is State.OPEN
        and conn.send_in_progress is None
        and not protocol.expect_continuation_frame
    )


# Connections written per slice of a flush before the loop may read again: ~1 ms of sends
# at 1,000 members, so a message read mid-flush waits at most that long to join it.
FLUSH_SLICE = 64


class Cork:
    """Coalesces broadcast frames per recipient: the first frame queued for a connection
    puts it at the back of the flush queue, and each connection then gets one write (one
    syscall) for all the frames queued until its turn, instead of one per frame. The send
    syscall is most of a delivery's CPU, and the busier the node, the more frames share one.

    The queue is written FLUSH_SLICE connections at a time, with the loop free to read
    between slices: a message read while a flush is under way joins the frames of every
    recipient still waiting for its turn, and goes out in the same pass. Written all at
    once, the pass would end first, and a new message would wait for it before its own pass
    began: up to two passes instead of one (at 100 messages/s to 1,000 members, a pass is
    about 20 ms). An idle node writes at the next iteration, as soon as the message's
    handler has run. websockets' own writes flush a connection's frames first
    (ChatConnection.send_data); a connection whose frames went out that way is skipped at
    its turn."""

    def __init__(self) -> None:
        self._queue: deque[ChatConnection] = deque()

    def write(self, conn: ChatConnection, prepared: Prepared) -> None:
        """Queues the frame for a connection `writable()` accepted just now."""
        protocol = conn.protocol
        if protocol.extensions:  # never with compression=None: websockets must encode it
            protocol.send_text(prepared.payload)
            conn.send_data()
            return
        if protocol.writes:  # never expected (see above): keep the order all the same
            conn.send_data()
        if conn.corked is None:
            conn.corked = [prepared.frame]
            if not self._queue:
                conn.loop.call_soon(self._flush)
            self._queue.append(conn)
        else:
            conn.corked.append(prepared.frame)
        conn.corked_bytes += len(prepared.frame)

    def _flush(self) -> None:
        queue = self._queue
        for _ in range(min(FLUSH_SLICE, len(queue))):
            conn = queue.popleft()
            try:
                conn.uncork()
            except Exception as exc:  # one broken transport must not keep the others waiting
                log.warning("broadcast write failed", error=str(exc))
        if queue:
            queue[0].loop.call_soon(self._flush)
