"""The control channel: the website's signed notices, published on the bus, become control
commands on every replica (docs/design.md §5, "Control"). This module is only the transport:
notices.NoticeVerifier decides what a notice says, control.Control acts on it.

A message on `parley:control` is a JSON object: `notice` (the signed notice, required),
`request_id` and `traceparent` (optional: the website request it came from, so the lines and
spans of every replica join that request's). A message that is not such an object, or whose
notice does not verify, changes nothing and counts in chat_control_rejections_total{reason}."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import structlog
from opentelemetry.trace import SpanKind
from websockets.datastructures import Headers

from . import metrics, telemetry
from .auth import AuthError, unauthorized
from .control import Control
from .notices import NoticeVerifier

log = structlog.get_logger(__name__)

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
MAX_MESSAGE_BYTES = 8192  # a notice is a few hundred bytes


class ControlChannel:
    def __init__(self, control: Control, notices: NoticeVerifier) -> None:
        self._control = control
        self._notices = notices
        self._pending: set[asyncio.Task[int | None]] = set()  # strong refs until handled
        # How many messages were handled, and the last one's outcome (sockets closed, None if
        # refused): what an operator's debugger or a test waits on.
        self.handled = 0
        self.last: int | None = None

    def receive(self, data: bytes) -> None:
        """Called by the bus's reader: verification may fetch the JWKS, so it runs apart."""
        task = asyncio.create_task(self.handle(data))
        self._pending.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[int | None]) -> None:
        self._pending.discard(task)
        self.handled += 1
        error = None if task.cancelled() else task.exception()
        if error is not None:  # a bug, not a refused notice: say so
            log.error("control message failed", error=type(error).__name__)
        self.last = None if task.cancelled() or error is not None else task.result()

    async def handle(self, data: bytes) -> int | None:
        """Verifies and applies one message; returns how many sockets it closes (None if
        it was refused)."""
        message = _parse(data)
        request_id = message.get("request_id")
        if not isinstance(request_id, str) or not _REQUEST_ID.fullmatch(request_id):
            request_id = telemetry.request_id(Headers())
        traceparent = message.get("traceparent")
        carrier = Headers({"traceparent": traceparent} if isinstance(traceparent, str) else {})
        structlog.contextvars.bind_contextvars(request_id=request_id)
        with telemetry.tracer.start_as_current_span(
            "control.message",
            context=telemetry.extract(carrier),
            kind=SpanKind.CONSUMER,
            attributes={telemetry.REQUEST_ID: request_id},
        ) as span:
            notice = message.get("notice")
            try:
                if not isinstance(notice, str) or not notice:
                    raise unauthorized("no notice", "missing_token")
                command = await self._notices.verify(notice)
            except AuthError as exc:
                metrics.CONTROL_REJECTIONS.labels(exc.reason).inc()
                span.set_attribute(telemetry.REASON, exc.reason)
                log.info("control rejected", reason=exc.reason)
                return None
            return self._control.apply(command)


def _parse(data: bytes) -> dict[str, Any]:
    if len(data) > MAX_MESSAGE_BYTES:
        return {}
    try:
        message = json.loads(data)
    except ValueError:
        return {}
    return message if isinstance(message, dict) else {}
