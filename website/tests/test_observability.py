"""JSON logs with trace ids under a span; spans for requests, queries, tokens; no secrets."""

import io
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.utils import PASSWORD, Browser, unique_room
from website.logging import BatchedStdout, configure_logging, get_logger
from website.tracing import build_tracer_provider


@pytest.fixture(scope="session")
def spans(tracer_provider: TracerProvider) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


class Output:
    """What the website has written to stdout so far in this test (both paths: our own
    loggers' lines and stdlib logging's), read through pytest's capsys."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys
        self._text = ""

    def getvalue(self) -> str:
        self._text += self._capsys.readouterr().out
        return self._text


@pytest.fixture
def logs(capsys: pytest.CaptureFixture[str]) -> Output:
    capsys.readouterr()  # what the fixtures before this one wrote is not this test's
    return Output(capsys)


async def test_token_request_is_traced_and_logged_without_secrets(
    user: Browser, spans: InMemorySpanExporter, logs: Output
) -> None:
    room = unique_room()
    await user.create_room(room)
    spans.clear()
    token = (await user.token(room)).json()["token"]
    out = logs.getvalue()
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    (issued,) = [line for line in lines if line["event"] == "chat token issued"]
    finished = spans.get_finished_spans()
    assert any((span.attributes or {}).get("db.system") == "postgresql" for span in finished)
    (token_span,) = [span for span in finished if span.name == "chat_token.issue"]
    assert issued["trace_id"] == format(token_span.context.trace_id, "032x")
    assert len(issued["span_id"]) == 16
    assert {"ts", "level", "event", "service", "request_id"} <= set(issued)
    assert issued["service"] == "website" and issued["ts"].endswith("Z")
    assert token not in out and user.email not in out


async def test_login_logs_carry_no_password_or_session(user: Browser, logs: Output) -> None:
    await user.logout()
    await user.login(user.email)
    out = logs.getvalue()
    assert '"event": "login succeeded"' in out
    assert PASSWORD not in out
    assert user.http.cookies["parley_session"] not in out


def test_tracebacks_are_structured_and_carry_no_locals(logs: Output) -> None:
    def fail(password: str) -> None:
        raise ValueError("boom")

    try:
        fail("hunter2-secret")
    except ValueError:
        logging.getLogger("website.test").exception("it broke")
    (line,) = [json.loads(raw) for raw in logs.getvalue().splitlines() if "it broke" in raw]
    (error,) = line["exception"]
    assert error["exc_type"] == "ValueError" and error["exc_value"] == "boom"
    assert any(frame["name"] == "fail" for frame in error["frames"])
    assert "hunter2-secret" not in logs.getvalue()
    assert all("locals" not in frame for frame in error["frames"])


class _Writes(io.RawIOBase):
    """A raw stream that records each write: what Docker's daemons would read."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        chunk = bytes(data)  # type: ignore[call-overload]
        self.writes.append(chunk)
        return len(chunk)


def events(chunk: bytes) -> list[str]:
    return [json.loads(line)["event"] for line in chunk.decode().splitlines()]


def test_the_served_websites_lines_leave_in_batches() -> None:
    raw = _Writes()
    out = BatchedStdout(raw, interval_s=0.05)
    try:
        configure_logging(out=out)
        log = get_logger("tests.batched")
        for n in range(20):
            log.info(f"line {n}")
        logging.getLogger("uvicorn.error").info("stdlib line")
        expected = [f"line {n}" for n in range(20)] + ["stdlib line"]
        deadline = time.monotonic() + 5  # the flush thread runs every 0.05 s
        while events(b"".join(raw.writes)) != expected and time.monotonic() < deadline:
            time.sleep(0.01)
        assert events(b"".join(raw.writes)) == expected
        # In one write, or two should the thread's flush fall among them: never one per line.
        assert len(raw.writes) <= 2

        # A warning or worse is written before the call returns, after the lines before it;
        # so is every line once closed (logging's own shutdown runs after ours at exit).
        def written() -> list[str]:
            return events(b"".join(raw.writes))

        log.info("opened")
        log.warning("throttled")
        assert written()[-2:] == ["opened", "throttled"]
        logging.getLogger("uvicorn.error").error("stdlib error")
        assert written()[-1] == "stdlib error"
        out.close()
        log.info("after close")
        assert written()[-1] == "after close"
        out.flusher.join(timeout=5)
        assert not out.flusher.is_alive()
    finally:
        out.close()
        configure_logging()  # the session's, as __main__'s but unbatched (capsys reads it)


def test_a_warning_is_written_at_once_whatever_another_thread_logs_meanwhile() -> None:
    # A warning rendered in one thread (a request in the thread pool) while another writes an
    # info line and flushes: the warning still leaves with its own flush, not up to a flush
    # interval later.
    raw = _Writes()
    out = BatchedStdout(raw, interval_s=60)  # the flush thread stays out of it

    def write_the_warning() -> None:
        out.write("the warning\n")
        out.flush()

    try:
        with ThreadPoolExecutor(max_workers=1) as worker:  # one thread, reused
            worker.submit(out.mark_severe).result()  # its warning is being rendered
            out.write("info from the loop\n")
            out.flush()
            worker.submit(write_the_warning).result()
            assert b"".join(raw.writes) == b"info from the loop\nthe warning\n"
    finally:
        out.close()


@pytest.mark.parametrize(("variable", "endpoint", "recording"), [
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "", False),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", " ", False),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318", True),
    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/v1/traces", True),
])  # fmt: skip
def test_spans_record_only_when_exported(
    monkeypatch: pytest.MonkeyPatch, variable: str, endpoint: str, recording: bool
) -> None:
    # Exporting nothing, a span records nothing, yet has the ids the log lines carry. Either
    # standard variable turns export on, as in the chat.
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, endpoint)
    provider = build_tracer_provider()
    try:
        span = provider.get_tracer("test").start_span("x", attributes={"a": 1})
        assert span.is_recording() is recording
        assert span.get_span_context().is_valid  # never ended: nothing for an exporter to send
    finally:
        provider.shutdown()
