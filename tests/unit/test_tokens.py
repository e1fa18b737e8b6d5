"""TokenAuthority: the user tokens it mints verify; nothing else does."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from tests.support.forgery import FORGERIES
from tocsin.auth.tokens import TokenAuthority
from tocsin.clock import FrozenClock
from tocsin.domain.errors import Unauthorized

SECRET = "unit-test-secret-0123456789abcdef0123456789abcdef0123456789abcdef"


def test_minted_token_verifies_as_its_user() -> None:
    authority = TokenAuthority(SECRET)
    started = int(time.time())
    token, expires_at = authority.mint("ada", 600)
    finished = int(time.time())
    assert authority.verify(token) == "ada"
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["sub"] == "ada"
    assert claims["exp"] == int(expires_at.timestamp())
    assert started + 600 <= claims["exp"] <= finished + 600
    assert expires_at.utcoffset() == timedelta(0)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


@pytest.mark.parametrize("algorithm", ["HS256", "HS384", "HS512"])
def test_configured_algorithm_is_the_only_one_accepted(algorithm: str) -> None:
    authority = TokenAuthority(SECRET, algorithm)
    token, _ = authority.mint("ada", 60)
    assert jwt.get_unverified_header(token)["alg"] == algorithm
    assert authority.verify(token) == "ada"
    for other in {"HS256", "HS384", "HS512"} - {algorithm}:
        with pytest.raises(Unauthorized):
            TokenAuthority(SECRET, other).verify(token)


def test_token_of_another_secret_is_refused() -> None:
    token, _ = TokenAuthority(SECRET).mint("ada", 60)
    with pytest.raises(Unauthorized):
        TokenAuthority(SECRET[::-1]).verify(token)


@pytest.mark.parametrize("forgery", FORGERIES)
def test_forged_token_is_refused(forgery: str) -> None:
    token = FORGERIES[forgery](SECRET, "ada")
    with pytest.raises(Unauthorized) as raised:
        TokenAuthority(SECRET).verify(token)
    assert raised.value.status == 401 and raised.value.message


@pytest.mark.parametrize(("forgery", "says"), [
    ("expired", "expired"), ("without_exp", "'exp'"), ("without_sub", "'sub'"),
    ("sub_with_nul", "control characters"), ("sub_too_long", "at most 255"),
    ("empty_sub", "non-empty"), ("lives_317_years", "TOCSIN_MAX_TOKEN_TTL_SECONDS"),
    ("lives_too_long_without_iat", "TOCSIN_MAX_TOKEN_TTL_SECONDS"), ("exp_not_a_number", "'exp'"),
])
def test_refusal_says_why(forgery: str, says: str) -> None:
    with pytest.raises(Unauthorized) as raised:
        TokenAuthority(SECRET).verify(FORGERIES[forgery](SECRET, "ada"))
    assert says in raised.value.message


def test_lifetime_is_checked_against_the_configured_maximum() -> None:
    clock = FrozenClock(datetime(2030, 1, 1, tzinfo=UTC))
    now = int(clock.now().timestamp())
    day = 86400
    authority = TokenAuthority(SECRET, clock=clock, max_ttl_seconds=7 * day)
    at_most = jwt.encode({"sub": "ada", "iat": now, "exp": now + 7 * day}, SECRET)
    assert authority.verify(at_most) == "ada"
    # Issued long ago: what counts is exp - iat, not the time left.
    old_and_long = jwt.encode({"sub": "ada", "iat": now - 30 * day, "exp": now + day}, SECRET)
    with pytest.raises(Unauthorized, match="maximum of 604800 seconds"):
        authority.verify(old_and_long)
    # Without iat, the time left is the lifetime.
    no_iat = jwt.encode({"sub": "ada", "exp": now + 8 * day}, SECRET)
    with pytest.raises(Unauthorized, match="maximum"):
        authority.verify(no_iat)
    assert TokenAuthority(SECRET, clock=clock, max_ttl_seconds=9 * day).verify(no_iat) == "ada"


def test_expiry_follows_the_injected_clock() -> None:
    clock = FrozenClock(datetime(2030, 1, 1, tzinfo=UTC))
    authority = TokenAuthority(SECRET, clock=clock)
    token, expires_at = authority.mint("ada", 600)
    assert expires_at == datetime(2030, 1, 1, 0, 10, tzinfo=UTC)
    claims = authority.verify_claims(token)
    assert claims.expires_in == 600
    clock.advance(599)
    assert authority.verify(token) == "ada"
    clock.advance(1)
    with pytest.raises(Unauthorized, match="expired"):
        authority.verify(token)


def test_not_before_in_the_future_is_refused() -> None:
    clock = FrozenClock(datetime(2030, 1, 1, tzinfo=UTC))
    now = int(clock.now().timestamp())
    early = jwt.encode({"sub": "ada", "exp": now + 600, "nbf": now + 300}, SECRET)
    with pytest.raises(Unauthorized, match="nbf"):
        TokenAuthority(SECRET, clock=clock).verify(early)
    clock.advance(300)
    assert TokenAuthority(SECRET, clock=clock).verify(early) == "ada"
