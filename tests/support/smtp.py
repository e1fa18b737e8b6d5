"""A real SMTP server (aiosmtpd) of a test's own, on a free port, in a thread of its own.

It records every message it accepts, and can be told to answer the next RCPT or DATA commands
with a reply of the test's choosing ("450 4.2.0 mailbox busy", "550 5.1.1 no such user") or to
drop the connection instead of answering, the way a real relay misbehaves.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support.services import free_port

Command = Literal["RCPT", "DATA"]
#: Instead of a reply: close the connection without a word.
DROP = "drop"


@dataclass(frozen=True)
class Received:
    """One message the server accepted (answered 250 to its DATA)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes

    @property
    def email(self) -> EmailMessage:
        parsed = message_from_bytes(self.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def message_id(self) -> str:
        return str(self.email["Message-ID"])


@dataclass
class _Fault:
    reply: str
    remaining: int | None  # None: until healed


@dataclass
class RecordingHandler:
    """aiosmtpd's handler: its hooks run in the server's thread, the test reads from its own."""

    received: list[Received] = field(default_factory=list)
    #: Every message whose DATA the server read, with the reply it gave ("250", "450 …", DROP).
    data_attempts: list[tuple[str, Received]] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)  # "RCPT 450 …", "DATA 250", "DATA drop"…
    #: Seconds the server takes before it answers each DATA (a slow relay).
    data_delay: float = 0.0
    _faults: dict[str, _Fault] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, command: Command, reply: str, times: int | None = 1) -> None:
        """Answer the next `times` `command`s with `reply` (or DROP); None: every one, until
        `heal()`."""
        with self._lock:
            self._faults[command] = _Fault(reply, times)

    def heal(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take(self, command: Command) -> str | None:
        with self._lock:
            fault = self._faults.get(command)
            if fault is None:
                return None
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    del self._faults[command]
            return fault.reply

    def _answer(self, server: SMTP, command: Command, fault: str) -> str:
        with self._lock:
            self.commands.append(f"{command} {fault}")
        if fault == DROP:
            assert isinstance(server.transport, asyncio.Transport)
            server.transport.abort()
        return fault

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        fault = self._take("RCPT")
        if fault is not None:
            return self._answer(server, "RCPT", fault)
        with self._lock:
            self.commands.append("RCPT 250")
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        content = envelope.original_content or envelope.content or b""
        assert isinstance(content, bytes)
        message = Received(mail_from=str(envelope.mail_from),
                           rcpt_tos=tuple(envelope.rcpt_tos), content=content)
        fault = self._take("DATA")
        with self._lock:
            self.data_attempts.append((fault or "250", message))
        if fault is not None:
            return self._answer(server, "DATA", fault)
        with self._lock:
            self.commands.append("DATA 250")
            self.received.append(message)
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    host: str
    port: int
    handler: RecordingHandler
    controller: Any

    @property
    def url(self) -> str:
        """For TOCSIN_SMTP_URL / SmtpSettings: plain SMTP, never TLS."""
        return f"smtp+plain://{self.host}:{self.port}"

    @property
    def messages(self) -> list[Received]:
        with self.handler._lock:
            return list(self.handler.received)

    @property
    def data_attempts(self) -> list[tuple[str, Received]]:
        with self.handler._lock:
            return list(self.handler.data_attempts)

    @property
    def commands(self) -> list[str]:
        with self.handler._lock:
            return list(self.handler.commands)

    def fail(self, command: Command, reply: str, times: int | None = 1) -> None:
        self.handler.fail(command, reply, times)

    def heal(self) -> None:
        self.handler.heal()

    def slow_down(self, seconds: float) -> None:
        """Answer each DATA only after `seconds` (0: at once again)."""
        self.handler.data_delay = seconds

    def wait_for_messages(self, count: int, timeout: float = 15.0) -> list[Received]:
        """Block until at least `count` messages arrived (bounded by `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.messages
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise TimeoutError(f"{len(self.messages)} of {count} messages arrived within {timeout}s")

    async def until_messages(self, count: int, within: float = 15.0) -> list[Received]:
        """`wait_for_messages` for async tests: polls without blocking the event loop."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            found = self.messages
            if len(found) >= count:
                return found
            await asyncio.sleep(0.02)
        raise TimeoutError(f"{len(self.messages)} of {count} messages arrived within {within}s")


@contextmanager
def smtp_server() -> Iterator[SmtpServer]:
    """A running SMTP server on 127.0.0.1 and a free port, stopped on exit."""
    handler = RecordingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    try:
        yield SmtpServer(host="127.0.0.1", port=port, handler=handler, controller=controller)
    finally:
        controller.stop()


def unused_port() -> int:
    """A port nothing listens on (for 'connection refused')."""
    return free_port()
