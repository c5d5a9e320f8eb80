"""Structured JSON logs (structlog) with `component`, `asset_id` and `job_id` where they apply."""

import logging
import sys
from typing import Any

import structlog

_configured = False


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time of each record, not the one seen at set-up."""

    @property  # type: ignore[override]
    def stream(self):  # type: ignore[no-untyped-def]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:  # type: ignore[no-untyped-def]
        pass


def configure_logging(level: int = logging.INFO) -> None:
    """Send structlog and standard-library logs to stderr as one JSON object per line."""
    global _configured
    if _configured:
        return
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = _StderrHandler()
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, structlog.processors.JSONRenderer()],
    ))
    heimdex = logging.getLogger("heimdex")
    heimdex.addHandler(handler)
    heimdex.setLevel(level)
    heimdex.propagate = False
    _configured = True


def get_logger(component: str, **context: Any) -> structlog.stdlib.BoundLogger:
    """A JSON logger bound to a component (`sensor`, `assets`, `api`, ...) and extra context."""
    configure_logging()
    return structlog.get_logger(f"heimdex.{component}").bind(component=component, **context)
