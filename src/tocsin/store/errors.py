"""Driver and pool errors, translated: what the database says, in the core's terms.

A failure to reach or use the database becomes `StoreUnavailable` (503 with Retry-After at the
edge), a lost race the database reports as retryable becomes `Retry` (the transaction runs
again), and anything else is a real error and is kept as it is.
"""

from __future__ import annotations

from typing import NoReturn

from sqlalchemy import exc as sa_exc

from tocsin.domain.errors import StoreUnavailable

RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected


def reraise(exc: Exception) -> NoReturn:
    translated = translate(exc)
    if translated is exc:
        raise exc
    raise translated from exc


class Retry(Exception):
    """The transaction lost a race the database reports as retryable."""


def translate(exc: BaseException) -> BaseException:
    """Driver and pool errors → `StoreUnavailable` or `Retry`; anything else is kept.

    "The database cannot serve now" is decided by SQLSTATE class, not by exception type: the
    drivers map the same condition to different classes (asyncpg's "the database system is
    starting up" arrives as a bare DBAPI `Error`), and a 500 for it would tell a caller that
    retrying is pointless when it is exactly what to do."""
    if isinstance(exc, (Retry, StoreUnavailable)):
        return exc
    sqlstate = _sqlstate(exc)
    if sqlstate in RETRYABLE_SQLSTATES:
        return Retry()
    if sqlstate is not None and sqlstate[:2] in _UNAVAILABLE_CLASSES:
        return StoreUnavailable(f"the database is unavailable: {_first_line(_origin(exc))}")
    if isinstance(exc, sa_exc.DBAPIError):
        if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)) or \
                exc.connection_invalidated:
            return StoreUnavailable(f"the database is unavailable: {_first_line(exc.orig)}")
        return exc
    if isinstance(exc, (OSError, TimeoutError, sa_exc.TimeoutError, ConnectionError)):
        return StoreUnavailable(f"the database is unreachable: {_first_line(exc)}")
    name = type(exc).__name__
    if type(exc).__module__.startswith("asyncpg") and (
        "Connection" in name or "CannotConnectNow" in name or "TooManyConnections" in name
        or name == "InterfaceError"
    ):
        return StoreUnavailable(f"the database is unavailable: {_first_line(exc)}")
    return exc


#: SQLSTATE classes meaning "cannot serve now, try later": 08 connection exception,
#: 53 insufficient resources (too many connections, disk full, out of memory),
#: 57 operator intervention (shutting down, starting up, in recovery), 58 system error (I/O).
#: And 28 / 3D: the role or the database is missing or refused; a deployment mistake, but
#: still "nothing was stored, the database cannot take it", never a 500.
_UNAVAILABLE_CLASSES = {"08", "53", "57", "58", "28", "3D"}


def _sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a PostgreSQL error, wrapped or not; None for anything else."""
    seen: BaseException | None = exc
    for _ in range(4):  # SQLAlchemy wraps the driver's error, which may wrap another
        if seen is None:
            return None
        code = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if isinstance(code, str) and len(code) == 5:
            return code
        seen = getattr(seen, "orig", None) or seen.__cause__
    return None


def _origin(exc: BaseException) -> BaseException:
    """The driver's own error, for a message that says what the database said."""
    orig = getattr(exc, "orig", None)
    return orig if isinstance(orig, BaseException) else exc


def _first_line(exc: object) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
