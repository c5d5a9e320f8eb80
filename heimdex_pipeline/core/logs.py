"""Structured JSON logs (structlog) with `component`, `asset_id` and `job_id` where they apply.

No secret reaches a log line: bearer tokens, JWTs and the signatures of signed URLs are redacted
from our own records (a structlog processor) and from the server's access and error logs (a filter).
"""

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_configured = False

REDACTED = "[REDACTED]"
# Query parameters that carry a credential: signed-URL signatures (S3, GCS, generic) and tokens.
SECRET_QUERY_PARAMS = ("signature", "sig", "x-amz-signature", "x-amz-credential", "x-amz-security-token",
                       "x-goog-signature", "x-goog-credential", "token", "access_token", "id_token", "jwt")
# Fields of a log event whose whole value is secret.
SECRET_FIELDS = frozenset({"authorization", "proxy-authorization", "cookie", "token", "jwt", "jwt_secret",
                           "secret", "password", "signature"})
_SECRET_QUERY = re.compile(r"(?i)([?&;](?:%s)=)[^&#\s\"'<>]*" % "|".join(map(re.escape, SECRET_QUERY_PARAMS)))
# The credentials of an Authorization value (RFC 7235 token68), not the word "bearer" in prose.
_AUTH_SCHEME = re.compile(r"\b([Bb]earer|[Bb]asic)(\s+)[A-Za-z0-9._~+/-]{8,}=*")
# A JWS/JWT anywhere (in a path, a message, a traceback): its header always starts `{"` = `eyJ`.
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
# Servers whose own loggers write lines we do not format: their records are redacted in place.
SERVER_LOGGERS = ("uvicorn.access", "uvicorn.error")


def redact(text: str) -> str:
    """`text` with tokens, credentials of an Authorization value and signed-URL signatures replaced."""
    text = _JWT.sub(REDACTED, text)
    text = _AUTH_SCHEME.sub(rf"\1\2{REDACTED}", text)
    return _SECRET_QUERY.sub(rf"\1{REDACTED}", text)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    if isinstance(value, dict):
        return {k: REDACTED if str(k).lower() in SECRET_FIELDS else _redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_redact_value(v) for v in value]
    # Anything else would be rendered by its repr: redact that.
    return redact(repr(value))


def redact_secrets(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor: the event with every secret field and secret-looking text redacted."""
    return _redact_value(dict(event_dict))


class RedactingFilter(logging.Filter):
    """Redacts a standard-library record's message, arguments and traceback in place."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            # Kept a tuple of the same length: uvicorn's access formatter unpacks it.
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


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
        # Redacted last, once the traceback is text too.
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, redact_secrets, structlog.processors.JSONRenderer()],
    ))
    heimdex = logging.getLogger("heimdex")
    heimdex.addHandler(handler)
    heimdex.setLevel(level)
    heimdex.propagate = False
    for name in SERVER_LOGGERS:
        logging.getLogger(name).addFilter(RedactingFilter())
    _configured = True


def get_logger(component: str, **context: Any) -> structlog.stdlib.BoundLogger:
    """A JSON logger bound to a component (`sensor`, `assets`, `api`, ...) and extra context."""
    configure_logging()
    return structlog.get_logger(f"heimdex.{component}").bind(component=component, **context)
