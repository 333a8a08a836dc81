"""Domain exceptions shared by every service, and their gRPC status codes.

Core code raises these (it never imports grpc); :mod:`designsearch.server` maps them onto gRPC
status codes with ``google.rpc`` rich details (``BadRequest``, ``ErrorInfo``, ``RetryInfo``).
"""

from __future__ import annotations


class DesignSearchError(Exception):
    """Base of every domain error.

    Attributes:
        message: human-readable explanation, sent to the client.
        field: the request field at fault, if any (becomes a ``BadRequest.FieldViolation``).
        reason: a short UPPER_SNAKE_CASE machine-readable reason (``ErrorInfo.reason``).
    """

    code_name = "INTERNAL"
    reason = "INTERNAL"
    #: Longest message and field sent to a client, characters (an echoed request value cannot grow
    #: the error past gRPC's header limits).
    MAX_MESSAGE = 1000
    MAX_FIELD = 200

    def __init__(self, message: str, *, field: str | None = None, reason: str | None = None) -> None:
        if len(message) > self.MAX_MESSAGE:
            message = message[: self.MAX_MESSAGE - 30] + f"… [{len(message)} chars]"
        super().__init__(message)
        self.message = message
        self.field = field[: self.MAX_FIELD] if field else field
        if reason is not None:
            self.reason = reason


class InvalidArgument(DesignSearchError):
    """The request is malformed: gRPC ``INVALID_ARGUMENT``."""

    code_name = "INVALID_ARGUMENT"
    reason = "INVALID_ARGUMENT"


class InvalidImage(InvalidArgument):
    """Image bytes that are empty, not an image, truncated, or too large."""

    reason = "INVALID_IMAGE"


class NotFound(DesignSearchError):
    """A named resource (collection, design, snapshot) does not exist: gRPC ``NOT_FOUND``."""

    code_name = "NOT_FOUND"
    reason = "NOT_FOUND"


class BackendUnavailable(DesignSearchError):
    """A dependency (service, Redis, database, index) is down: gRPC ``UNAVAILABLE``, retryable.

    Attributes:
        retry_after_s: suggested client back-off in seconds (``RetryInfo.retry_delay``).
    """

    code_name = "UNAVAILABLE"
    reason = "BACKEND_UNAVAILABLE"

    def __init__(self, message: str, *, retry_after_s: float = 1.0, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after_s = retry_after_s


class AlreadyExists(DesignSearchError):
    """The resource exists in another form (e.g. these image bytes are catalogued under another
    design): gRPC ``ALREADY_EXISTS``."""

    code_name = "ALREADY_EXISTS"
    reason = "ALREADY_EXISTS"


class FailedPrecondition(DesignSearchError):
    """The system is not in the state the request needs (e.g. no calibration for the live model):
    gRPC ``FAILED_PRECONDITION``."""

    code_name = "FAILED_PRECONDITION"
    reason = "FAILED_PRECONDITION"


class ResourceExhausted(DesignSearchError):
    """A caller went over its rate limit: gRPC ``RESOURCE_EXHAUSTED`` with ``RetryInfo``.

    Attributes:
        retry_after_s: when the caller may try again, seconds.
    """

    code_name = "RESOURCE_EXHAUSTED"
    reason = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after_s: float = 1.0, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after_s = retry_after_s


class Unauthenticated(DesignSearchError):
    """Missing or wrong API key: gRPC ``UNAUTHENTICATED``."""

    code_name = "UNAUTHENTICATED"
    reason = "UNAUTHENTICATED"
