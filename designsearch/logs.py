"""structlog configuration: every log line carries the current request id (a contextvar)."""

from __future__ import annotations

import contextvars
import logging
import sys

import structlog

#: Request id of the RPC being handled (set by the server interceptor, sent on outgoing calls).
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
#: Who is calling: ``key:<12 hex of sha256(API key)>`` when the service checks API keys, else
#: ``anonymous`` (set by the server interceptor; feedback is stored and applied per caller).
caller: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="anonymous")


def _add_request_id(_, __, event_dict):
    rid = request_id.get()
    if rid != "-":
        event_dict.setdefault("request_id", rid)
    return event_dict


def _add_caller(_, __, event_dict):
    who = caller.get()
    if who != "anonymous":
        event_dict.setdefault("caller", who)
    return event_dict


def configure_logging(level: str = "INFO", json: bool = False) -> None:
    """Configure structlog (and stdlib logging) once per process; writes to stderr.

    JSON lines carry an exception's type, message and traceback as structured fields
    (``exception``: structlog's ``dict_tracebacks``), so ``log.exception(...)`` is searchable.
    """
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, level.upper(), logging.INFO), format="%(message)s")
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    exceptions = [structlog.processors.dict_tracebacks] if json else []
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _add_request_id,
            _add_caller,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            *exceptions,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str):
    """A structlog logger bound to ``component=name``."""
    return structlog.get_logger(component=name)
