"""One JSON object per log line, for our events and for every stdlib logger (uvicorn's too)."""

import logging
import sys
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


def configure_logging(level: str = "INFO", service: str = SERVICE) -> None:
    """`service` names the writer in every line: the website, or the one-shot `migrate` and
    admin commands that run its code.

    Our own loggers render straight to stdout (a level check, then the processors once): the
    stdlib round trip (a LogRecord, the caller's frame, the handler, the processors again) was
    a tenth of a chat token's cost. Other libraries' lines (uvicorn's) still come through
    stdlib logging to the same processors, so every line has the same shape."""
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        _service_adder(service),
        _add_trace_ids,
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
        logger_factory=structlog.WriteLoggerFactory(cast(TextIO, _Stdout())),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(cast(TextIO, _Stdout()))
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
