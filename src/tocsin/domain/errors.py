"""Errors the core raises; the HTTP layer maps each to a status and the contract's error shape."""

from __future__ import annotations

from typing import Any


class TocsinError(Exception):
    """Base of errors meant for the caller: `code` is stable, `message` is for humans."""

    status = 400
    code = "bad_request"
    #: Seconds after which trying again may succeed (sent as Retry-After), for 429 and 503.
    retry_after: float | None = None

    def __init__(self, message: str, *, details: Any = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if retry_after is not None:
            self.retry_after = retry_after


class SettingsError(TocsinError):
    """A setting is missing or malformed; raised at start, before serving anything."""

    code = "invalid_settings"


class NotFound(TocsinError):
    status = 404
    code = "not_found"


class Unauthorized(TocsinError):
    status = 401
    code = "unauthorized"


class InvalidInput(TocsinError):
    status = 422
    code = "validation_error"


class IdempotencyMismatch(TocsinError):
    """The Idempotency-Key was used before with a different request body."""

    status = 422
    code = "idempotency_key_reused"


class IdempotencyInFlight(TocsinError):
    """A request with the same Idempotency-Key is still being processed."""

    status = 409
    code = "idempotency_key_in_flight"


class Conflict(TocsinError):
    """The resource is not in a state that allows this (a notification already released)."""

    status = 409
    code = "conflict"


class RateLimited(TocsinError):
    """Over a rate limit: nothing was done; `retry_after` says when there is room again."""

    status = 429
    code = "rate_limited"


class StoreUnavailable(TocsinError):
    """The database cannot be reached; nothing was committed."""

    status = 503
    code = "store_unavailable"
    retry_after = 5


class Forbidden(TocsinError):
    """The caller is known, and this is not theirs to do."""

    status = 403
    code = "forbidden"
