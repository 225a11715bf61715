"""One frame to many local sockets, in a `chat.broadcast` span: for the handler (its own
members' messages and presence) and the relay (what other replicas publish)."""

from __future__ import annotations

from collections.abc import Sequence, Set

from opentelemetry import context, trace
from opentelemetry.trace import Link

from . import telemetry
from .connection import ChatConnection
from .keepalive import Watchdog

_tracer = telemetry.tracer


def broadcast(
    watchdog: Watchdog, room: str, kind: str, recipients: Set[ChatConnection], frame: str,
    links: Sequence[Link] | None,
) -> int:  # fmt: skip
    """The watchdog's broadcast in a `chat.broadcast` span: one span per frame, never one
    per recipient. With `links`, a root span linked to the sender's handshake (a
    connection lives for hours; its messages are traces of their own); without, a child
    of the current span. Returns how many recipients were written to."""
    if not recipients:  # the last one out of a room
        return 0
    span = _tracer.start_span(
        "chat.broadcast",
        context=telemetry.ROOT if links is not None else None,
        links=links,
        attributes={telemetry.ROOM: room, telemetry.FRAME_TYPE: kind,
                    telemetry.RECIPIENTS: len(recipients)},
    )  # fmt: skip
    # Current while writing, so anything logged meanwhile (write errors, slow consumers
    # cut) carries the span's ids.
    token = context.attach(trace.set_span_in_context(span, telemetry.ROOT))
    try:
        return watchdog.broadcast(recipients, frame)
    finally:
        context.detach(token)
        span.end()
