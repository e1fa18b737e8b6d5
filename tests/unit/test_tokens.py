"""TokenAuthority: the user tokens it mints verify; nothing else does."""

from __future__ import annotations

import time
from datetime import timedelta

import jwt
import pytest

from tests.support.forgery import FORGERIES
from tocsin.auth.tokens import TokenAuthority
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
])
def test_refusal_says_why(forgery: str, says: str) -> None:
    with pytest.raises(Unauthorized) as raised:
        TokenAuthority(SECRET).verify(FORGERIES[forgery](SECRET, "ada"))
    assert says in raised.value.message
