"""Refused handshakes: a stream that is not allowed never starts, and sends no event.

WebSocket is refused before it is accepted (HTTP 403 to the upgrade); SSE answers 401 (no or
bad token) or 403 (Origin, cursor) with the JSON error body every endpoint uses. Who connects
is the verified token's subject, and nothing else the request says.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.client import JWT_SECRET, counted, new_user
from tests.support.forgery import FORGERIES
from tests.support.live import (
    LiveServer,
    live_server,
    open_sse,
    sse_refused,
    token_for,
    ws_refused,
)

pytestmark = pytest.mark.e2e

APP = "https://app.example"
EVIL = "https://evil.example"


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with live_server(database_url, tmp_path, TOCSIN_ALLOWED_ORIGINS=APP) as running:
        yield running


def assert_error(body: Any, code: str) -> None:
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body


async def test_refused_handshakes_send_nothing_and_identity_is_the_token(server: LiveServer
                                                                         ) -> None:
    await only_a_valid_token_opens_a_stream_and_it_alone_says_who(server)
    await foreign_origins_and_bad_cursors_are_refused(server)


async def only_a_valid_token_opens_a_stream_and_it_alone_says_who(server: LiveServer) -> None:
    user = new_user()
    assert len(FORGERIES) >= 10
    for name, forge in FORGERIES.items():
        token = forge(JWT_SECRET, user)
        assert await ws_refused(server.url, token) == 403, name
        status, body = await sse_refused(server.url, token)
        assert status == 401, (name, body)
        assert_error(body, "unauthorized")
        # The same token in the query is refused the same way.
        assert await ws_refused(server.url, query={"token": token}) == 403, name
        assert (await sse_refused(server.url, query={"token": token}))[0] == 401, name

    assert await ws_refused(server.url) == 403
    status, body = await sse_refused(server.url)
    assert status == 401
    assert_error(body, "unauthorized")
    # A publisher key is not a user token.
    api_key = {"Authorization": server.api.publisher["Authorization"]}
    assert await ws_refused(server.url, headers=api_key) == 403
    assert (await sse_refused(server.url, headers=api_key))[0] == 401

    # None of this left a stream behind: a real token still gets one.
    async with server.ws(user) as ws:
        assert counted((await ws.expect("unread-count")).data) == {"count": 0, "seq": 0}

    # Who connects is the token's subject: what else the request claims is ignored.
    alice, bob = new_user("alice"), new_user("bob")
    pretending = {"token": token_for(bob), "user_id": bob, "sub": bob, "user": bob}
    async with server.ws(alice, query=pretending) as ws, \
            server.sse(alice, query=pretending, headers={"X-User-Id": bob}) as sse:
        for stream in (ws, sse):
            await stream.expect("unread-count")
        await server.publish(bob, title="for bob")
        mine = await server.publish(alice, title="for alice")
        for stream in (ws, sse):
            notification = await stream.expect("notification")
            assert notification.data["id"] == mine["id"]  # Bob's came first, and was not heard
    # The Authorization header wins over ?token=; without a header, ?token= is the identity.
    async with server.sse(bob, query={"token": token_for(alice)}) as by_header, \
            open_sse(server.url, query={"token": token_for(alice)}) as by_query:
        for stream in (by_header, by_query):
            await stream.expect("unread-count")
        for_bob = await server.publish(bob)
        for_alice = await server.publish(alice)
        assert (await by_header.expect("notification")).data["id"] == for_bob["id"]
        assert (await by_query.expect("notification")).data["id"] == for_alice["id"]

    # Tokens sent as ?token= (accepted or refused, WebSocket or SSE) never reach the log.
    log = server.process.output()
    assert '"WebSocket /v1/ws" 403' in log and '"WebSocket /v1/ws" [accepted]' in log
    assert "token=" not in log
    assert token_for(alice).split(".")[0] not in log  # not even a token's header part


async def foreign_origins_and_bad_cursors_are_refused(server: LiveServer) -> None:
    user = new_user()
    token = token_for(user)
    for origin in (EVIL, "null", f"{APP}.evil.example", "http://app.example"):
        assert await ws_refused(server.url, token, headers={"Origin": origin}) == 403, origin
        status, body = await sse_refused(server.url, token, headers={"Origin": origin})
        assert status == 403, (origin, body)
        assert_error(body, "forbidden")
        # ... even before the token is looked at: no token, still the Origin's refusal.
        assert (await sse_refused(server.url, headers={"Origin": origin}))[0] == 403

    # The allowed Origin, the server's own, and no Origin at all (not a browser) connect.
    for headers in ({"Origin": APP}, {"Origin": server.url}, {}):
        async with server.ws(user, headers=headers) as ws:
            await ws.expect("unread-count")
        async with server.sse(user, headers=headers) as sse:
            await sse.expect("unread-count")

    for bad in ("abc", "-1", "+1", "1.5", "0x10", "1e3", "9" * 30):
        assert await ws_refused(server.url, token, query={"since": bad}) == 403, bad
        status, body = await sse_refused(server.url, token, query={"since": bad})
        assert status == 403, (bad, body)
        assert_error(body, "forbidden")
        status, body = await sse_refused(server.url, token, headers={"Last-Event-ID": bad})
        assert status == 403, (bad, body)
        assert_error(body, "forbidden")
    # Digits that are not ASCII digits: superscript two passes str.isdigit() yet int() refuses
    # it, and Arabic-Indic one would be read as 1. Both are bad cursors, not a 500 or a seq.
    for bad in ("\u00b2", "\u0661", "1\u00b2"):
        assert await ws_refused(server.url, token, query={"since": bad}) == 403, bad
        status, body = await sse_refused(server.url, token, query={"since": bad})
        assert status == 403, (bad, body)
        assert_error(body, "forbidden")
    # An empty ?since= is a malformed cursor; an empty Last-Event-ID (a browser that has seen
    # no id yet) is no cursor at all.
    assert await ws_refused(server.url, token, query={"since": ""}) == 403
    assert (await sse_refused(server.url, token, query={"since": ""}))[0] == 403
    async with server.sse(user, headers={"Last-Event-ID": ""}) as sse:
        await sse.expect("unread-count")
    # The refusals left nothing behind: a good cursor still connects.
    async with server.ws(user, since=0) as ws:
        await ws.expect("unread-count")
