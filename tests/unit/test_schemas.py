"""The request bodies' own rules: links that stay safe, real time zones, storable JSON."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tocsin.api.schemas import MAX_DATA_DEPTH, PublishBody, ReadAllBody, UserBody


def publish(**fields: Any) -> PublishBody:
    return PublishBody.model_validate({"user_id": "ada", "type": "comment", **fields})


@pytest.mark.parametrize("url", [
    "https://example.com/posts/7#c3",
    "http://localhost:8000/x?y=1",
    "/posts/7",
    "/",
    "/search?q=a%20b",
])
def test_safe_action_urls_are_kept(url: str) -> None:
    assert publish(action_url=url).action_url == url


@pytest.mark.parametrize("url", [
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    " javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "//evil.example/login",
    "/\\evil.example/login",
    "/\t/evil.example",
    "https:evil.example",
    "https://",
    "posts/7",
    "ftp://example.com/file",
    "",
])
def test_unsafe_or_ambiguous_action_urls_are_refused(url: str) -> None:
    with pytest.raises(ValidationError) as raised:
        publish(action_url=url)
    assert raised.value.errors()[0]["loc"] == ("action_url",)


@pytest.mark.parametrize("zone", ["Europe/London", "America/Argentina/Buenos_Aires", "UTC"])
def test_iana_time_zones_are_kept(zone: str) -> None:
    assert UserBody(timezone=zone).timezone == zone


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "GMT+25", "../../etc/passwd",
                                  "/etc/localtime", "Europe/London\x00", ""])
def test_unknown_time_zones_are_refused(zone: str) -> None:
    with pytest.raises(ValidationError) as raised:
        UserBody(timezone=zone)
    assert raised.value.errors()[0]["loc"] == ("timezone",)


@pytest.mark.parametrize("when", ["2099-01-01T00:00:00Z", "2099-01-01T00:00:00+14:00",
                                  "9999-12-31T23:59:59+01:00"])
def test_aware_expiry_is_kept(when: str) -> None:
    expires_at = publish(expires_at=when).expires_at
    assert expires_at is not None and expires_at.tzinfo is not None


@pytest.mark.parametrize("when", ["2099-01-01T00:00:00", "9999-12-31T23:59:59-01:00"])
def test_naive_or_unconvertible_expiry_is_refused(when: str) -> None:
    with pytest.raises(ValidationError) as raised:
        publish(expires_at=when)
    assert raised.value.errors()[0]["loc"] == ("expires_at",)


def deep(depth: int) -> Any:
    value: Any = {}
    for _ in range(depth):
        value = {"d": value}
    return value


@pytest.mark.parametrize("data", [
    {}, {"n": 2**63 - 1, "neg": -(2**63)}, {"f": 1.5, "list": [None, True, "x"]},
    {"unicode": "é ✓ \U0001f514"}, {"deep": deep(MAX_DATA_DEPTH - 2)},  # 32 levels
])
def test_storable_data_is_kept(data: dict[str, Any]) -> None:
    assert publish(data=data).data == data


@pytest.mark.parametrize("data", [
    {"n": 2**64}, {"f": float("nan")}, {"f": float("inf")}, {"s": "a\x00b"}, {"k\x00": 1},
    {"list": ["ok", {"s": "\x00"}]}, {"s": "\ud800"}, {"deep": deep(300)},
    {"deep": deep(MAX_DATA_DEPTH - 1)}, {"deep": [[deep(MAX_DATA_DEPTH - 3)]]},
])
def test_unstorable_data_is_refused(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as raised:
        publish(data=data)
    assert raised.value.errors()[0]["loc"] == ("data",)


@pytest.mark.parametrize("field", ["title", "message"])
def test_nul_in_text_is_refused(field: str) -> None:
    assert getattr(publish(**{field: "fine"}), field) == "fine"
    with pytest.raises(ValidationError):
        publish(**{field: "not\x00fine"})


@pytest.mark.parametrize(("seq", "ok"), [(0, True), (2**63 - 1, True), (-1, False),
                                         (2**63, False)])
def test_read_all_seq_fits_the_store(seq: int, ok: bool) -> None:
    if ok:
        assert ReadAllBody(seq=seq).seq == seq
    else:
        with pytest.raises(ValidationError):
            ReadAllBody(seq=seq)
