"""Structured JSON logging: structlog events and stdlib records (websockets, asyncio) alike."""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor

from .telemetry import add_trace_ids


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
    handler = logging.StreamHandler(stream or sys.stdout)
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
