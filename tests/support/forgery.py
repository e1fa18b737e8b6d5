"""User tokens an attacker could bring: each is refused by a server holding `secret`.

Every forger takes the server's real secret (so a forgery that only works when the server
trusts the token's header can use it) and the user the token claims to be.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import warnings
from collections.abc import Callable
from typing import Any

import jwt
import orjson
from jwt.warnings import InsecureKeyLengthWarning

Forger = Callable[[str, str], str]
OTHER_SECRET = "not-the-server-secret-0123456789abcdef"
#: What an RS256 verifier would hold: a public key anyone may read.
PUBLIC_KEY_PEM = (
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEjpQ3y0k2m4f4t8m0mQx0m8q2b8v7\n"
    "-----END PUBLIC KEY-----\n"
)


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(user: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {"sub": user, "iat": now, "exp": now + 3600}
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


def hand_made(header: dict[str, Any], payload: dict[str, Any], key: str | None) -> str:
    """A JWT built byte by byte, HMAC-SHA256-signed with `key`, or unsigned when None."""
    signing_input = f"{b64url(orjson.dumps(header))}.{b64url(orjson.dumps(payload))}"
    signature = "" if key is None else b64url(
        hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest())
    return f"{signing_input}.{signature}"


def alg_none(secret: str, user: str) -> str:
    return hand_made({"alg": "none", "typ": "JWT"}, claims(user), None)


def alg_none_signed(secret: str, user: str) -> str:
    return hand_made({"alg": "none", "typ": "JWT"}, claims(user), secret)


def wrong_secret(secret: str, user: str) -> str:
    return jwt.encode(claims(user), OTHER_SECRET, algorithm="HS256")


def expired(secret: str, user: str) -> str:
    now = int(time.time())
    return jwt.encode(claims(user, iat=now - 7200, exp=now - 3600), secret, algorithm="HS256")


def without_exp(secret: str, user: str) -> str:
    return jwt.encode({"sub": user}, secret, algorithm="HS256")


def without_sub(secret: str, user: str) -> str:
    return jwt.encode(claims(user, sub=None), secret, algorithm="HS256")


def empty_sub(secret: str, user: str) -> str:
    return jwt.encode(claims(user, sub=""), secret, algorithm="HS256")


def numeric_sub(secret: str, user: str) -> str:
    return jwt.encode(claims(user, sub=42), secret, algorithm="HS256")


def sub_with_nul(secret: str, user: str) -> str:
    """PostgreSQL text cannot hold NUL: such a `sub` must never reach a query."""
    return jwt.encode(claims(user, sub=f"{user}\x00"), secret, algorithm="HS256")


def sub_with_newline(secret: str, user: str) -> str:
    return jwt.encode(claims(user, sub=f"{user}\nadmin"), secret, algorithm="HS256")


def sub_too_long(secret: str, user: str) -> str:
    return jwt.encode(claims(user, sub=user + "x" * 256), secret, algorithm="HS256")


def lives_317_years(secret: str, user: str) -> str:
    """Signed with the real secret, but valid for far longer than any token may be."""
    now = int(time.time())
    return jwt.encode(claims(user, iat=now, exp=now + 317 * 365 * 86400), secret,
                      algorithm="HS256")


def lives_too_long_without_iat(secret: str, user: str) -> str:
    return jwt.encode(claims(user, iat=None, exp=int(time.time()) + 31 * 86400), secret,
                      algorithm="HS256")


def exp_not_a_number(secret: str, user: str) -> str:
    return jwt.encode(claims(user, exp="tomorrow"), secret, algorithm="HS256")


def rs256_header_hmac_with_secret(secret: str, user: str) -> str:
    """HS/RS confusion: the header says RS256, the signature is an HMAC with the real secret."""
    return hand_made({"alg": "RS256", "typ": "JWT"}, claims(user), secret)


def rs256_header_hmac_with_public_key(secret: str, user: str) -> str:
    """HS/RS confusion, classic form: HMAC keyed with the (public) RSA key's PEM."""
    return hand_made({"alg": "RS256", "typ": "JWT"}, claims(user), PUBLIC_KEY_PEM)


def other_hmac_algorithm(secret: str, user: str) -> str:
    """The real secret, but an algorithm the server was not configured with."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(claims(user), secret, algorithm="HS512")


def garbage(secret: str, user: str) -> str:
    return "this.is-not.a-jwt"


def sub_swapped_after_signing(secret: str, user: str) -> str:
    """A genuine token of another user, its payload re-encoded to claim `user`."""
    genuine = jwt.encode(claims(f"{user}-accomplice"), secret, algorithm="HS256")
    header, _, signature = genuine.split(".")
    return f"{header}.{b64url(orjson.dumps(claims(user)))}.{signature}"


def truncated_signature(secret: str, user: str) -> str:
    return jwt.encode(claims(user), secret, algorithm="HS256")[:-4]


FORGERIES: dict[str, Forger] = {
    forger.__name__: forger
    for forger in (
        alg_none, alg_none_signed, wrong_secret, expired, without_exp, without_sub, empty_sub,
        numeric_sub, sub_with_nul, sub_with_newline, sub_too_long, lives_317_years,
        lives_too_long_without_iat, exp_not_a_number, rs256_header_hmac_with_secret,
        rs256_header_hmac_with_public_key,
        other_hmac_algorithm, garbage, sub_swapped_after_signing, truncated_signature,
    )
}
