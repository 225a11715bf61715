"""Structured JSON logging: structlog events and stdlib records (websockets, asyncio) alike."""

from __future__ import annotations

import io
import logging
import sys
import threading
from typing import Any, ClassVar, TextIO

import structlog
from structlog.typing import EventDict, Processor

from .telemetry import add_trace_ids

# Lines reach stdout in batches, not one write per line: Docker's daemons (containerd's shim,
# dockerd) read and store every write of a container's output, and one write per line cost
# them 0.9-1.1 s of CPU per connect storm of 5,000 sockets (two lines each), outside the
# chat's cgroup and on the chat's cores; batched, at most about 0.1 s (docs/design.md §7).
FLUSH_INTERVAL_S = 0.1
BUFFER_BYTES = 64 * 1024


class BatchedStreamHandler(logging.StreamHandler[TextIO]):
    """A StreamHandler that does not flush after every line. A thread flushes every
    FLUSH_INTERVAL_S; a warning or worse is flushed at once, after the lines before it; and
    logging.shutdown() flushes at exit. A process killed outright loses at most the last
    FLUSH_INTERVAL_S of lower lines."""

    def __init__(self, stream: TextIO, interval_s: float = FLUSH_INTERVAL_S) -> None:
        super().__init__(stream)
        self._stop = threading.Event()
        self.flusher = threading.Thread(target=self._flush_every, args=(interval_s,),
                                        name="log-flush", daemon=True)  # fmt: skip
        self.flusher.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)
            return
        self.write_line(line, at_once=record.levelno >= logging.WARNING)

    def write_line(self, line: str, *, at_once: bool) -> None:
        """Buffers one rendered line; `at_once` (a warning or worse) writes it out now, after
        the lines before it."""
        self.acquire()
        try:
            self.stream.write(line + self.terminator)
            if at_once:
                self.stream.flush()
        except (OSError, ValueError):  # stdout gone or closed: a log line never fails its caller
            pass
        finally:
            self.release()

    def close(self) -> None:
        self._stop.set()
        self.flush()
        super().close()

    def _flush_every(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.flush()
            except (OSError, ValueError):  # stdout gone or closed: keep trying, never die
                continue


def buffered_stdout() -> TextIO:
    """Standard output with a buffer of its own (the image sets PYTHONUNBUFFERED, so
    sys.stdout writes each line at once)."""
    raw = io.FileIO(sys.stdout.fileno(), "w", closefd=False)
    return io.TextIOWrapper(io.BufferedWriter(raw, BUFFER_BYTES), encoding="utf-8")


def _add_service(_: Any, __: str, event_dict: EventDict) -> EventDict:
    event_dict.setdefault("service", "chat")
    return event_dict


class EventLines:
    """structlog's logger for the chat's own events: each rendered line goes straight to the
    handler of the latest configure(). The stdlib round trip (a LogRecord, the caller's
    frame, the handler, the processors a second time) took 37 µs a line against 10. The
    handler is looked up at every line because structlog keeps a module's logger for good
    once used, and the tests configure again."""

    handler: ClassVar[BatchedStreamHandler]  # set by configure() before it makes any logger

    def __init__(self, name: str = "chat") -> None:
        self.name = name  # `structlog.get_logger(__name__)`: the line's `logger`, as stdlib's

    def _line(self, line: str) -> None:
        EventLines.handler.write_line(line, at_once=False)

    def _line_at_once(self, line: str) -> None:
        EventLines.handler.write_line(line, at_once=True)

    debug = info = msg = _line
    warning = warn = error = critical = exception = fatal = _line_at_once


def configure(level: str = "INFO", stream: TextIO | None = None) -> None:
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,  # a stdlib record's name, or EventLines.name
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        _add_service,
        add_trace_ids,  # trace_id/span_id while a span is active
    ]
    renderer: list[Processor] = [
        # Structured tracebacks without frame locals: locals could hold tokens or text.
        structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        ),
        structlog.processors.JSONRenderer(),
    ]
    handler = BatchedStreamHandler(stream or buffered_stdout())
    EventLines.handler = handler
    # Our own events: a level check, then the processors once, then the line.
    structlog.configure(
        processors=[*shared, *renderer],
        logger_factory=EventLines,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
    # Other libraries' lines (websockets, asyncio, OpenTelemetry) through stdlib logging, to
    # the same processors and the same handler.
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Python warnings too (they would go to stderr otherwise).
    logging.captureWarnings(True)
    # websockets logs every connection and HTTP answer at INFO; our own events cover those.
    logging.getLogger("websockets").setLevel(max(logging.WARNING, root.level))
