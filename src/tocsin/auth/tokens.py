"""End-user tokens: JWTs whose `sub` is the user id; `exp` required, algorithm pinned."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import jwt

from tocsin.domain.errors import Unauthorized


class TokenAuthority:
    """Mints and verifies user tokens with one HMAC secret.

    Only the configured algorithm is accepted, so `alg: none` and HS/RS confusion are refused
    by construction; `exp` and `sub` must be present.
    """

    def __init__(self, secret: str, algorithm: str = "HS256") -> None:
        self._secret = secret
        self._algorithm = algorithm

    def mint(self, user_id: str, ttl_seconds: int) -> tuple[str, datetime]:
        now = int(time.time())
        expires = now + ttl_seconds
        token = jwt.encode({"sub": user_id, "iat": now, "exp": expires}, self._secret,
                           algorithm=self._algorithm)
        return token, datetime.fromtimestamp(expires, UTC)

    def verify(self, token: str) -> str:
        """The user id of a valid token, or `Unauthorized` saying why not."""
        return self.verify_claims(token)[0]

    def verify_claims(self, token: str) -> tuple[str, float]:
        """The user id and expiry (epoch seconds) of a valid token, or `Unauthorized`."""
        try:
            claims = jwt.decode(token, self._secret, algorithms=[self._algorithm],
                                options={"require": ["exp", "sub"]})
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(f"the token has no {exc.claim!r} claim") from None
        except jwt.InvalidTokenError:
            raise Unauthorized("the token is not valid") from None
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise Unauthorized("the token's 'sub' must be a non-empty string")
        return subject, float(claims["exp"])
