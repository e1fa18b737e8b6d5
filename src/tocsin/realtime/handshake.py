"""What every stream checks before it sends anything: origin, token, cursor, capacity."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import Headers, QueryParams

from tocsin.auth.tokens import TokenAuthority
from tocsin.domain.errors import TocsinError, Unauthorized


class Refused(TocsinError):
    """The stream is refused before it starts; no event is sent."""

    status = 403
    code = "forbidden"


class TooManyConnections(TocsinError):
    status = 429
    code = "too_many_connections"
    retry_after = 5  # streams close all the time: a slot is likely free by then


@dataclass(frozen=True, slots=True)
class Handshake:
    user_id: str
    since: int | None
    expires_in: float  # seconds until the token expires


def origin_allowed(origin: str | None, host: str | None, allowed: list[str]) -> bool:
    """Browsers send Origin; a page from another site may connect only if it is allowed.
    Clients that send no Origin (servers, mobile apps) cannot be cross-site-hijacked."""
    if origin is None or "*" in allowed or origin in allowed:
        return True
    return host is not None and urlsplit(origin).netloc == host


def bearer_token(headers: Headers, query: QueryParams) -> str:
    header = headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    token = query.get("token")
    if token:
        return token
    raise Unauthorized("a user token is required: Authorization: Bearer <jwt> or ?token=")


def parse_since(raw: str | None) -> int | None:
    if raw is None:
        return None
    # ASCII digits only: str.isdigit() is true of other scripts' digits too, and of
    # superscripts, which int() then refuses (a 500 for bad input).
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise Refused("the cursor (since / Last-Event-ID) must be a non-negative integer seq")
    return int(raw)


def check(headers: Headers, query: QueryParams, tokens: TokenAuthority, allowed: list[str],
          since_header: str | None = None) -> Handshake:
    """Raise `Refused` or `Unauthorized`, or return who is connecting and from where."""
    if not origin_allowed(headers.get("origin"), headers.get("host"), allowed):
        raise Refused("this Origin may not open streams; see TOCSIN_ALLOWED_ORIGINS")
    claims = tokens.verify_claims(bearer_token(headers, query))
    # An empty Last-Event-ID is what a browser sends before it has seen an id: no cursor. An
    # empty `?since=` is a client's mistake, refused like any other malformed cursor.
    raw_since = (headers.get(since_header) or None) if since_header else None
    since = parse_since(raw_since if raw_since is not None else query.get("since"))
    return Handshake(user_id=claims.user_id, since=since, expires_in=claims.expires_in)
