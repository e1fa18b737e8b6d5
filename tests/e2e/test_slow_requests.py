"""Slow and oversized request heads against a real server: a client trickling its headers, or
sending none, is cut off with 408; an oversized URL (a WebSocket handshake included) gets 414
and oversized headers 431 at once; normal requests, large bodies included, are untouched."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.client import PUBLISHER_KEY
from tests.support.live import LiveServer, live_server

pytestmark = pytest.mark.e2e

HEAD_TIMEOUT = 1
#: How long a test waits for the server's answer before calling it a hang (the defect kept
#: sockets open for good, and a long-URL handshake for the WebSocket library's own timeout).
PATIENCE = 15


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with live_server(f"sqlite:///{tmp_path / 'slow.db'}", tmp_path,
                           TOCSIN_HTTP_HEAD_TIMEOUT_SECONDS=str(HEAD_TIMEOUT)) as running:
        yield running


async def _connect(server: LiveServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = server.url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def _answer(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    async with asyncio.timeout(PATIENCE):
        return await reader.read()


def _status(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:80]
    return int(answer.split(b" ", 2)[1])


async def test_trickled_and_silent_heads_are_cut_off_with_408(server: LiveServer) -> None:
    async def trickler() -> bytes:
        reader, writer = await _connect(server)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        reading = asyncio.ensure_future(_answer(reader))
        try:
            while not reading.done():  # one header byte every 100 ms, for ever
                writer.write(b"X")
                await asyncio.sleep(0.1)
        except ConnectionError:
            pass
        writer.close()
        return await reading

    async def silent() -> bytes:
        reader, writer = await _connect(server)
        try:
            return await _answer(reader)
        finally:
            writer.close()

    answers = await asyncio.gather(*[trickler() for _ in range(100)],
                                   *[silent() for _ in range(100)])
    assert {_status(answer) for answer in answers} == {408}
    # The server is still there for everyone else.
    assert (await server.api.client.get("/healthz")).status_code == 200


async def test_a_kept_alive_connection_gets_the_same_deadline_per_request(
        server: LiveServer) -> None:
    reader, writer = await _connect(server)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert _status(head) == 200
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    await reader.readexactly(length)
    writer.write(b"GET /healthz HTTP/1.1\r\nHo")  # the next request's head never finishes
    assert _status(await _answer(reader)) == 408
    writer.close()


async def test_an_oversized_websocket_url_is_refused_at_once(server: LiveServer) -> None:
    reader, writer = await _connect(server)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET /v1/ws?token={'a' * 13_000} HTTP/1.1\r\nHost: x\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    answer = await _answer(reader)
    writer.close()
    assert _status(answer) == 414
    assert b"8192" in answer


@pytest.mark.parametrize(("head", "status"), [
    (f"GET /healthz?{'q' * 9000} HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: {'p' * 17_000}\r\n\r\n", 431),
    ("GET /healthz HTTP/1.1\r\nHost: x\r\n" + "".join(f"X-{i}: {'v' * 100}\r\n"
                                                      for i in range(200)) + "\r\n", 431),
])
async def test_oversized_heads_get_their_status(server: LiveServer, head: str, status: int
                                                ) -> None:
    reader, writer = await _connect(server)
    writer.write(head.encode())
    assert _status(await _answer(reader)) == status
    writer.close()


async def test_normal_requests_and_large_bodies_pass(server: LiveServer) -> None:
    headers = {"Authorization": f"Bearer {PUBLISHER_KEY}", "X-Padding": "p" * 8000}
    big = {"user_id": "slow-ok", "type": "comment", "message": "m" * 5000,
           "data": {"blob": "b" * 900_000}}
    response = await server.api.client.post("/v1/notifications", json=big, headers=headers)
    assert response.status_code == 202, response.text
    long_url = "/healthz?" + "q" * 7000
    assert (await server.api.client.get(long_url)).status_code == 200


async def test_a_refusal_reaches_a_client_that_keeps_sending(server: LiveServer) -> None:
    # Headers far over the limit, all sent before reading: the server refuses with bytes of
    # the client's still unread. Closed at once, the kernel would answer them with a reset
    # that can destroy the 431 before the client reads it; drained, the answer arrives.
    reader, writer = await _connect(server)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    try:
        for _ in range(64):
            writer.write(b"X-Padding: " + b"p" * 4096 + b"\r\n")
            await writer.drain()
    except ConnectionError:
        pass
    assert _status(await _answer(reader)) == 431
    writer.close()
