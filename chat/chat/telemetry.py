"""OpenTelemetry tracing: the SDK always (so log lines get trace/span ids), OTLP/HTTP export
only when OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set.

Spans: `ws.handshake` (SERVER; continues an incoming W3C traceparent) covers the upgrade gate
and, for accepted sockets, the join up to "connection opened". On the control channel,
`control.message` (CONSUMER, continues the website's traceparent) covers one notice, and its
child `chat.control` the command it carried out. Each broadcast is a short `chat.broadcast` span.
A connection can live for hours, so there is no connection-lifetime span (it would export, if
ever, long after the fact): message and leave broadcasts are root spans *linked* to the
sender's handshake span, the join broadcast is a child of it. Spans never carry tokens,
headers or message text.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import uuid
from collections.abc import Mapping, Sequence

from opentelemetry import context, propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from structlog.typing import EventDict
from websockets.datastructures import Headers

log = logging.getLogger(__name__)

# Attribute keys (never a token, header value or message text).
ROOM = "chat.room"
RECIPIENTS = "chat.recipients"
FRAME_TYPE = "chat.frame_type"
# Of a handshake or a control notice (the name predates the control channel; dashboards use it).
OUTCOME = "chat.handshake.outcome"  # "accepted" | "rejected"
REASON = "chat.handshake.reason"  # the {reason} label of chat_*_rejections_total
USER_ID = "chat.user_id"
CONTROL_COMMAND = "chat.control.command"  # the notice's purpose: room_deleted | user_revoked
REQUEST_ID = "chat.request_id"  # nginx's X-Request-ID, also in the log lines
CONNECTIONS_CLOSED = "chat.connections_closed"
STATUS_CODE = "http.response.status_code"
URL_PATH = "url.path"

SHUTDOWN_GRACE_S = 1.5  # flush budget at exit, inside docker's stop grace period
ROOT = Context()  # explicit parent for root spans: nothing inherited from the task

tracer = trace.get_tracer("chat")


def add_trace_ids(_: object, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: the active span's ids, hex as in W3C traceparent."""
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event_dict["trace_id"] = format(ctx.trace_id, "032x")
        event_dict["span_id"] = format(ctx.span_id, "016x")
    return event_dict


class _HeadersGetter(Getter[Headers]):
    def get(self, carrier: Headers, key: str) -> list[str] | None:
        values = carrier.get_all(key)
        return values if len(values) == 1 else None  # a repeated traceparent is ignored

    def keys(self, carrier: Headers) -> list[str]:
        return list(carrier.keys())


_GETTER = _HeadersGetter()


def extract(headers: Headers) -> Context:
    """Parent context from the upgrade request's traceparent (root if there is none)."""
    if "traceparent" not in headers:
        return ROOT
    return propagate.extract(headers, context=ROOT, getter=_GETTER)


_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def request_id(headers: Headers) -> str:
    """nginx's X-Request-ID, else a fresh one."""
    values = headers.get_all("X-Request-ID")
    if len(values) == 1 and _REQUEST_ID.fullmatch(values[0]):
        return values[0]
    return uuid.uuid4().hex  # direct clients (not through nginx) still get correlated lines


class RequestTrace:
    """The span of one HTTP request (an upgrade), current in
    the connection's task from the start until end(): for an upgrade, the handshake and the
    handler run in the same task, so the join is part of it."""

    __slots__ = ("_token", "links", "span")

    def __init__(self, name: str, headers: Headers, path: str, request_id: str) -> None:
        self.span: Span = tracer.start_span(
            name,
            context=extract(headers),
            kind=SpanKind.SERVER,
            attributes={URL_PATH: path[:200], REQUEST_ID: request_id},
        )
        self._token: object | None = context.attach(trace.set_span_in_context(self.span))
        # For the connection's later broadcasts: one Link object, reused for every message.
        self.links: Sequence[Link] = (Link(self.span.get_span_context()),)

    def end(self, status: int | None = None, error: BaseException | None = None) -> None:
        """Idempotent. `status`: the HTTP status of the answer (None: the client left first)."""
        if self._token is None:
            return
        span = self.span
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            span.set_attribute(OUTCOME, "error")
        else:
            if status is not None:
                span.set_attribute(STATUS_CODE, status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
            ok = status in (101, 200)
            span.set_attribute(OUTCOME, "accepted" if ok else "rejected")
        span.end()
        # The ended span (attributes, resource, events: ~2 KiB) is not kept for the socket's
        # life: its links (a SpanContext) are all the later broadcasts need.
        self.span = trace.INVALID_SPAN
        token, self._token = self._token, None
        context.detach(token)  # type: ignore[arg-type]


def _resource() -> Resource:
    # service.name=chat unless OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES say otherwise.
    return Resource.create({SERVICE_NAME: "chat"}).merge(OTELResourceDetector().detect())


def export_enabled(env: Mapping[str, str] = os.environ) -> bool:
    return any(
        env.get(name, "").strip()
        for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


class _InterruptibleExporter(SpanExporter):
    """Lets shutdown() cut the OTLP exporter's retry back-off short (an unreachable
    collector would otherwise hold the exit for its whole timeout), and makes it idempotent."""

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self._shut = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export(spans)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        with self._lock:
            if self._shut:
                return
            self._shut = True
        self._inner.shutdown()


class Telemetry:
    def __init__(self, provider: TracerProvider, exporter: _InterruptibleExporter | None) -> None:
        self.provider = provider
        self._exporter = exporter

    def shutdown(self, grace_s: float = SHUTDOWN_GRACE_S) -> None:
        """Flushes queued spans for at most `grace_s`, then gives up on them."""
        done = threading.Thread(target=self.provider.shutdown, name="otel-shutdown", daemon=True)
        done.start()
        done.join(grace_s)
        if done.is_alive() and self._exporter is not None:
            log.warning("trace export still failing at exit, dropping queued spans")
            self._exporter.shutdown()  # aborts the back-off sleep of the export in flight
            done.join(0.5)


def configure(env: Mapping[str, str] = os.environ) -> Telemetry:
    """Installs the global tracer provider. With no OTLP endpoint configured there is no
    exporter at all and nothing is ever sent or printed; spans then still get ids, for the
    logs, but record nothing (ALWAYS_OFF): no attributes, events or links that no one would
    read. With an exporter, OTEL_TRACES_SAMPLER or the SDK's default."""
    exporting = export_enabled(env)
    provider = TracerProvider(resource=_resource(), shutdown_on_exit=False,
                              sampler=None if exporting else ALWAYS_OFF)  # fmt: skip
    exporter = None
    if exporting:
        # Imported only when needed: it pulls in requests and protobuf.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = _InterruptibleExporter(OTLPSpanExporter())
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return Telemetry(provider, exporter)
