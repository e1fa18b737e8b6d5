"""The frames server/websocket.py makes itself are the bytes wsproto would have made."""

from __future__ import annotations

import pytest
from wsproto.frame_protocol import FrameProtocol

from tocsin.server.websocket import BINARY, TEXT, frame_header


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_a_text_frame_is_the_one_wsproto_makes(length: int) -> None:
    text = "é" * (length // 2) + "a" * (length % 2)  # multi-byte: the length is in bytes
    payload = text.encode()
    ours = frame_header(TEXT, len(payload)) + payload
    assert ours == bytes(FrameProtocol(client=False, extensions=[]).send_data(text))


@pytest.mark.parametrize("length", [0, 125, 126, 65536])
def test_a_binary_frame_is_the_one_wsproto_makes(length: int) -> None:
    payload = bytes(range(256)) * (length // 256) + bytes(length % 256)
    ours = frame_header(BINARY, len(payload)) + payload
    assert ours == bytes(FrameProtocol(client=False, extensions=[]).send_data(payload))
