"""One JSON object per log line, for our events and for every stdlib logger (uvicorn's too)."""

import atexit
import io
import logging
import sys
import threading
from typing import TextIO, cast

import structlog
from opentelemetry import trace
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

SERVICE = "website"


def _service_adder(service: str) -> Processor:
    def add_service(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
        event["service"] = service
        event.pop("color_message", None)  # uvicorn's ANSI-coloured copy of the message
        return event

    return add_service


def _add_trace_ids(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event["trace_id"] = format(context.trace_id, "032x")
        event["span_id"] = format(context.span_id, "016x")
    return event


class _Stdout:
    """Whatever sys.stdout is at each write: structlog keeps its loggers (and their file) for
    good once used, and the tests read every line with pytest's capsys, which swaps it."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


# The served website's lines reach stdout in batches, not one write per line: Docker's
# daemons (containerd's shim, dockerd) read and store every write of a container's output,
# outside the website's cgroup and on its cores. A token is three lines (the website's two,
# nginx's one); around paced token runs they cost the daemons about 300 µs per token, a fifth
# of the website's own CPU (docs/design.md §7).
FLUSH_INTERVAL_S = 0.1
BUFFER_BYTES = 64 * 1024
_SEVERE = frozenset({"warning", "warn", "error", "exception", "critical", "fatal"})


class BatchedStdout:
    """Standard output with a buffer of its own: written by a thread every FLUSH_INTERVAL_S,
    at once after a warning or worse (with the lines before it, in order), and at exit. Our
    loggers and the stdlib handler call flush() after each line; only a severe line makes it
    write, or any line once closed (atexit closes it before logging's own shutdown, and
    lines may still come). A process killed outright loses at most the last
    FLUSH_INTERVAL_S of lower lines."""

    def __init__(self, raw: io.RawIOBase | None = None,
                 interval_s: float = FLUSH_INTERVAL_S) -> None:  # fmt: skip
        if raw is None:  # the image sets PYTHONUNBUFFERED: sys.stdout writes every line
            raw = io.FileIO(sys.stdout.fileno(), "w", closefd=False)
        self._stream = io.TextIOWrapper(io.BufferedWriter(raw, BUFFER_BYTES), encoding="utf-8")
        self._lock = threading.Lock()  # structlog's logger and the stdlib handler both write
        # Per thread: the mark is set while a line is rendered and read by the flush() after its
        # write, both in the thread that logs it; another thread's flush must not clear it.
        self._severe = threading.local()
        self._stop = threading.Event()
        self.flusher = threading.Thread(target=self._flush_every, args=(interval_s,),
                                        name="log-flush", daemon=True)  # fmt: skip
        self.flusher.start()
        atexit.register(self.close)

    def write(self, text: str) -> int:
        with self._lock:
            return self._stream.write(text)

    def mark_severe(self) -> None:
        """The line being written is a warning or worse: the next flush() writes."""
        self._severe.marked = True

    def flush(self) -> None:
        if getattr(self._severe, "marked", False) or self._stop.is_set():  # closed: every line
            self._severe.marked = False
            self.write_out()

    def write_out(self) -> None:
        with self._lock:
            self._stream.flush()

    def close(self) -> None:
        self._stop.set()
        self.write_out()

    def _flush_every(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.write_out()
            except (OSError, ValueError):  # stdout gone or closed: keep trying, never die
                continue


def configure_logging(level: str = "INFO", service: str = SERVICE,
                      out: BatchedStdout | None = None) -> None:  # fmt: skip
    """`service` names the writer in every line: the website, or the one-shot `migrate` and
    admin commands that run its code. `out`: the served website's batched stdout; without,
    each line is written at once to whatever sys.stdout is (the commands, the tests).

    Our own loggers render straight to stdout (a level check, then the processors once): the
    stdlib round trip (a LogRecord, the caller's frame, the handler, the processors again) was
    a tenth of a chat token's cost. Other libraries' lines (uvicorn's) still come through
    stdlib logging to the same processors, so every line has the same shape."""

    def mark_severe(_: WrappedLogger, method: str, event: EventDict) -> EventDict:
        if out is not None and method in _SEVERE:
            out.mark_severe()
        return event

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        _service_adder(service),
        _add_trace_ids,
        mark_severe,  # last: it only looks at the method, it adds nothing
    ]
    renderer: list[Processor] = [
        # Structured tracebacks without frame locals: locals could hold passwords or tokens.
        structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        ),
        structlog.processors.EventRenamer("event"),
        structlog.processors.JSONRenderer(),
    ]
    structlog.configure(
        processors=[*shared, *renderer],
        logger_factory=structlog.WriteLoggerFactory(cast(TextIO, out or _Stdout())),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(cast(TextIO, out or _Stdout()))
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            # A record's `extra` fields, in the place they always had in a line.
            foreign_pre_chain=[*shared[:2], structlog.stdlib.ExtraAdder(), *shared[2:]],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # Our middleware writes the access log, with request ids and route templates.
    logging.getLogger("uvicorn.access").disabled = True


def get_logger(name: str | None = None) -> FilteringBoundLogger:
    """`name` is kept for the reader: lines carry no logger name (they never did)."""
    logger: FilteringBoundLogger = structlog.get_logger(name)
    return logger
