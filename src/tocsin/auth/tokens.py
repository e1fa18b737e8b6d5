"""End-user tokens: JWTs whose `sub` is the user id; `exp` required, algorithm pinned."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import jwt

from tocsin.clock import Clock, SystemClock
from tocsin.domain.errors import Unauthorized
from tocsin.domain.identifiers import user_id_problem

#: Clocks of the minting backend and of this server may disagree by this much.
CLOCK_SKEW_SECONDS = 60
DEFAULT_MAX_TTL_SECONDS = 30 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token says: who, and until when (epoch seconds)."""

    user_id: str
    expires_at: float
    expires_in: float  # seconds from now, on the authority's clock


class TokenAuthority:
    """Mints and verifies user tokens with one HMAC secret.

    Only the configured algorithm is accepted, so `alg: none` and HS/RS confusion are refused
    by construction; `exp` and `sub` must be present, `sub` must be a valid user id (the same
    rule as a `user_id` in a request body), and a token may not live longer than `max_ttl`
    (`exp - iat`, or `exp - now` without `iat`): a leaked self-minted token valid for centuries
    is refused. Time comes from the injected clock.
    """

    def __init__(self, secret: str, algorithm: str = "HS256", *, clock: Clock | None = None,
                 max_ttl_seconds: int = DEFAULT_MAX_TTL_SECONDS) -> None:
        self._secret = secret
        self._algorithm = algorithm
        self.clock: Clock = clock or SystemClock()
        self.max_ttl_seconds = max_ttl_seconds

    def mint(self, user_id: str, ttl_seconds: int) -> tuple[str, datetime]:
        now = int(self.clock.now().timestamp())
        expires = now + ttl_seconds
        token = jwt.encode({"sub": user_id, "iat": now, "exp": expires}, self._secret,
                           algorithm=self._algorithm)
        return token, datetime.fromtimestamp(expires, UTC)

    def verify(self, token: str) -> str:
        """The user id of a valid token, or `Unauthorized` saying why not."""
        return self.verify_claims(token).user_id

    def verify_claims(self, token: str) -> Claims:
        """The user and expiry of a valid token, or `Unauthorized` saying why not."""
        try:
            # Expiry and issue time are checked below against the injected clock.
            claims = jwt.decode(token, self._secret, algorithms=[self._algorithm],
                                options={"require": ["exp", "sub"], "verify_exp": False,
                                         "verify_iat": False, "verify_nbf": False})
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(f"the token has no {exc.claim!r} claim") from None
        except jwt.InvalidTokenError:
            raise Unauthorized("the token is not valid") from None
        now = self.clock.now().timestamp()
        expires = _number(claims["exp"], "exp")
        if expires <= now:
            raise Unauthorized("the token has expired")
        issued = _number(claims["iat"], "iat") if "iat" in claims else None
        lifetime = expires - (issued if issued is not None else now)
        if lifetime > self.max_ttl_seconds + CLOCK_SKEW_SECONDS:
            raise Unauthorized(
                f"the token lives longer than the maximum of {self.max_ttl_seconds} seconds "
                "(TOCSIN_MAX_TOKEN_TTL_SECONDS); mint one with a shorter 'exp'")
        if "nbf" in claims and _number(claims["nbf"], "nbf") > now + CLOCK_SKEW_SECONDS:
            raise Unauthorized("the token is not valid yet ('nbf')")
        subject = claims["sub"]
        problem = user_id_problem(subject)
        if problem is not None:
            raise Unauthorized(f"the token's 'sub' is not a valid user id: it {problem}")
        assert isinstance(subject, str)
        return Claims(user_id=subject, expires_at=expires, expires_in=expires - now)


def _number(value: object, claim: str) -> float:
    if not isinstance(value, bool) and isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # an integer no clock will ever reach
            number = math.inf
        if math.isfinite(number):
            return number
    raise Unauthorized(f"the token's {claim!r} claim must be a number of epoch seconds")
