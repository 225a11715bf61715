"""Tracing: handshake and broadcast spans, W3C traceparent, trace ids in the log lines."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from chat import telemetry, wire
from chat.keepalive import Watchdog
from tests.helpers import TIMEOUT_S, Chat, recv_join, recv_leave, recv_type


def named(spans: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name == name]


async def ended(spans: InMemorySpanExporter, name: str, count: int = 1) -> list[ReadableSpan]:
    """The `count` spans of that name, once ended: a rejected handshake's span ends just
    after its answer is written, so the client may see the answer first."""
    async with asyncio.timeout(TIMEOUT_S):
        while len(found := named(spans, name)) < count:  # noqa: ASYNC110 - polls the SDK
            await asyncio.sleep(0.005)
    assert len(found) == count, found
    return found


def ids(span: ReadableSpan) -> dict[str, str]:
    ctx = span.get_span_context()
    assert ctx is not None
    return {"trace_id": f"{ctx.trace_id:032x}", "span_id": f"{ctx.span_id:016x}"}


def log_records(buf: io.StringIO) -> dict[str, dict[str, Any]]:
    return {r["event"]: r for r in map(json.loads, buf.getvalue().splitlines())}


async def test_accepted_handshake_span(chat: Chat, spans: InMemorySpanExporter) -> None:
    async with chat.join(additional_headers={"X-Request-ID": "req-7"}) as ws:
        await recv_type(ws, wire.FRAME_WELCOME)
        [span] = named(spans, "ws.handshake")
    assert span.kind is SpanKind.SERVER and span.parent is None
    assert span.attributes == {
        "url.path": "/ws/rooms/lobby",
        "chat.request_id": "req-7",
        "chat.room": "lobby",
        "http.response.status_code": 101,
        "chat.handshake.outcome": "accepted",
    }
    assert span.instrumentation_scope is not None and span.instrumentation_scope.name == "chat"


@pytest.mark.parametrize("case", ["invalid_token", "wrong_room", "missing_token", "not_found"])
async def test_rejected_handshake_records_reason_never_the_token(
    chat: Chat, spans: InMemorySpanExporter, case: str
) -> None:
    token = chat.website.mint("elsewhere") if case == "wrong_room" else chat.website.mint()
    if case == "invalid_token":
        token = token[:-4] + "AAAA"
    client = {
        "invalid_token": chat.connect("lobby", token),
        "wrong_room": chat.connect("lobby", token, header=True),
        "missing_token": chat.connect("lobby"),
        "not_found": chat.connect(path="/nope", token=token),
    }[case]
    with pytest.raises(InvalidStatus) as info:
        async with client:
            pass
    status = info.value.response.status_code

    [span] = await ended(spans, "ws.handshake")
    attrs = dict(span.attributes or {})
    assert attrs["chat.handshake.outcome"] == "rejected"
    assert attrs["chat.handshake.reason"] == case
    assert attrs["http.response.status_code"] == status
    if case != "not_found":
        assert attrs["chat.room"] == "lobby"
    dump = repr([(s.attributes, s.events, s.links, s.status) for s in spans.get_finished_spans()])
    for leak in (token, token.split(".")[1], token.split(".")[2], "bearer", "@x.test"):
        assert leak not in dump


async def test_traceparent_on_the_upgrade_continues_the_trace(
    chat: Chat, spans: InMemorySpanExporter
) -> None:
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    headers = {"traceparent": f"00-{trace_id}-{parent_id}-01"}
    async with chat.join(additional_headers=headers) as ws:
        await recv_type(ws, wire.FRAME_WELCOME)
    [span] = named(spans, "ws.handshake")
    assert ids(span)["trace_id"] == trace_id
    assert span.parent is not None and f"{span.parent.span_id:016x}" == parent_id
    assert span.parent.is_remote

    # A malformed one is ignored: a fresh trace.
    spans.clear()
    async with chat.join(additional_headers={"traceparent": "00-zz-yy-01"}) as ws:
        await recv_type(ws, wire.FRAME_WELCOME)
    [span] = named(spans, "ws.handshake")
    assert span.parent is None and ids(span)["trace_id"] != trace_id


async def test_broadcast_spans(chat: Chat, spans: InMemorySpanExporter) -> None:
    async with chat.join(sub="u1", name="Alice") as alice:
        await recv_type(alice, wire.FRAME_WELCOME)
        async with chat.join(sub="u2", name="Bob") as bob:
            await recv_type(bob, wire.FRAME_WELCOME)
            await recv_join(alice, "u2")
            await bob.send(json.dumps({"type": "message", "text": "secret words"}))
            await recv_type(alice, wire.FRAME_MESSAGE)
            await recv_type(bob, wire.FRAME_MESSAGE)
        await recv_leave(alice, "u2")

    alice_hs, bob_hs = named(spans, "ws.handshake")
    join, message, leave = named(spans, "chat.broadcast")
    # Presence frames (one per tick, whoever joined or left in it): root spans, no links.
    for span in (join, leave):
        assert span.attributes == {"chat.room": "lobby", "chat.frame_type": "presence",
                                   "chat.recipients": 1}  # fmt: skip
        assert span.parent is None and not span.links
        assert span.context.trace_id not in (alice_hs.context.trace_id, bob_hs.context.trace_id)
    # Messages: short root spans of their own, linked to the sender's handshake.
    assert message.attributes == {"chat.room": "lobby", "chat.frame_type": "message",
                                  "chat.recipients": 2}  # fmt: skip
    assert message.parent is None
    assert message.context.trace_id not in (alice_hs.context.trace_id, bob_hs.context.trace_id)
    assert [link.context for link in message.links] == [bob_hs.context]
    assert "secret words" not in repr([s.attributes for s in spans.get_finished_spans()])


async def test_log_lines_carry_the_active_span_ids(
    chat: Chat,
    spans: InMemorySpanExporter,
    log_output: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_broadcast = Watchdog.broadcast

    def logging_broadcast(self: Watchdog, recipients: Any, frame: str) -> int:
        # Stands in for what is logged while writing (a failed write, a slow consumer cut).
        logging.getLogger("websockets.server").warning("during broadcast")
        return real_broadcast(self, recipients, frame)

    monkeypatch.setattr(Watchdog, "broadcast", logging_broadcast)
    with pytest.raises(InvalidStatus):
        async with chat.connect("lobby", "junk"):
            pass
    [rejected_span] = await ended(spans, "ws.handshake")
    rejected = log_records(log_output)["handshake rejected"]
    assert {k: rejected[k] for k in ("trace_id", "span_id")} == ids(rejected_span)

    spans.clear()
    log_output.truncate(0)
    log_output.seek(0)
    async with chat.join() as ws:
        await recv_type(ws, wire.FRAME_WELCOME)
        await ws.send(json.dumps({"type": "message", "text": "hi"}))
        await recv_type(ws, wire.FRAME_MESSAGE)
    [handshake] = named(spans, "ws.handshake")
    [message] = named(spans, "chat.broadcast")
    records = [json.loads(line) for line in log_output.getvalue().splitlines()]
    opened = next(r for r in records if r["event"] == "connection opened")
    assert {k: opened[k] for k in ("trace_id", "span_id")} == ids(handshake)
    # The welcome is written inside the handshake span, the message in its broadcast span.
    welcome, during = [r for r in records if r["event"] == "during broadcast"]
    assert {k: welcome[k] for k in ("trace_id", "span_id")} == ids(handshake)
    assert {k: during[k] for k in ("trace_id", "span_id")} == ids(message)
    # No span is active once the connection is set up: no stale ids.
    async with asyncio.timeout(TIMEOUT_S):
        while "connection closed" not in (by_event := log_records(log_output)):  # noqa: ASYNC110
            await asyncio.sleep(0.005)
    closed = by_event["connection closed"]
    assert "trace_id" not in closed and "span_id" not in closed


def test_add_trace_ids_only_for_a_valid_span() -> None:
    assert telemetry.add_trace_ids(None, "info", {"event": "x"}) == {"event": "x"}


def test_export_switch_and_resource(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not telemetry.export_enabled({})
    assert not telemetry.export_enabled({"OTEL_EXPORTER_OTLP_ENDPOINT": " "})
    assert telemetry.export_enabled({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    for name in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"):
        monkeypatch.delenv(name, raising=False)
    assert telemetry._resource().attributes["service.name"] == "chat"
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=ci")
    assert telemetry._resource().attributes["service.name"] == "chat"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "chat-canary")
    assert telemetry._resource().attributes["service.name"] == "chat-canary"


async def test_healthz_makes_no_span(chat: Chat, spans: InMemorySpanExporter) -> None:
    with pytest.raises(InvalidStatus) as info:
        async with connect(f"ws://127.0.0.1:{chat.port}/healthz", proxy=None):
            pass
    assert info.value.response.status_code == 200
    assert spans.get_finished_spans() == ()


@pytest.mark.parametrize(("env", "recording"), [
    ({}, False), ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
])  # fmt: skip
def test_spans_record_only_when_exported(env: dict[str, str], recording: bool) -> None:
    # Exporting nothing, a span records nothing, yet has the ids the log lines carry.
    tracing = telemetry.configure(env)
    try:
        span = tracing.provider.get_tracer("test").start_span("x", attributes={"a": 1})
        assert span.is_recording() is recording
        assert span.get_span_context().is_valid  # never ended: nothing for an exporter to send
    finally:
        tracing.shutdown()
