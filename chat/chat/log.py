"""Structured JSON logging: structlog events and stdlib records (websockets, asyncio) alike."""

from __future__ import annotations

import io
import logging
import sys
import threading
from typing import Any, TextIO

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
            self.stream.write(self.format(record) + self.terminator)
            if record.levelno >= logging.WARNING:
                self.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

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


def configure(level: str = "INFO", stream: TextIO | None = None) -> None:
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        _add_service,
        add_trace_ids,  # trace_id/span_id while a span is active
    ]
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # Structured tracebacks without frame locals: locals could hold tokens or text.
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            ),
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = BatchedStreamHandler(stream or buffered_stdout())
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Python warnings too (they would go to stderr otherwise).
    logging.captureWarnings(True)
    # The OpenTelemetry SDK and exporter log through stdlib loggers under "opentelemetry":
    # the root handler above renders them as JSON like everything else.
    # websockets logs every connection and HTTP answer at INFO; our own events cover those.
    logging.getLogger("websockets").setLevel(max(logging.WARNING, root.level))
