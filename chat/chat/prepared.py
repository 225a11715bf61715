"""Prepared frames: a broadcast's text frame serialised once by websockets' own framing, the
same bytes written to every recipient's transport (docs/design.md §11, "Prepared frames").

Why this is safe with websockets' protocol state, for a recipient that `writable()` accepts:
- Server frames are unmasked and the server runs without extensions (compression=None), so
  `Frame.serialize()` gives the very bytes `protocol.send_text()` would, for every recipient
  (with an extension negotiated, `write()` lets websockets encode the frame instead).
- Nothing can be pending in the protocol's output (`protocol.writes`): websockets flushes it
  with `send_data()` right after every `send_*()` and every `receive_data()`, and so does our
  keepalive. `write()` still flushes anything found there first, so order can never change.
- No fragmented message is ever in progress: the chat only sends whole str frames; a recipient
  that were mid-fragment (`send_in_progress`, `expect_continuation_frame`) is skipped, as
  websockets' own broadcast() skips it.
- A recipient that is not OPEN (closing, closed) is skipped: after our close frame or the
  client's, not one more data frame may follow.
The sans-IO protocol keeps no count of bytes sent, so bypassing send_text() leaves nothing of
its state behind."""

from __future__ import annotations

from dataclasses import dataclass

from websockets.frames import Frame, Opcode
from websockets.protocol import State

from .connection import ChatConnection


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


def write(conn: ChatConnection, prepared: Prepared) -> None:
    """Writes the frame to a connection `writable()` accepted just now."""
    protocol = conn.protocol
    if protocol.extensions:  # never with compression=None: websockets must encode it itself
        protocol.send_text(prepared.payload)
        conn.send_data()
        return
    if protocol.writes:  # never expected (see above): keep the order all the same
        conn.send_data()
    conn.transport.write(prepared.frame)
