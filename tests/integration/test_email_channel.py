"""EmailChannel against a real SMTP server (aiosmtpd): the message it sends, and how each way
an SMTP exchange can fail maps onto retry, dead letter or skip."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import getaddresses

import pytest

from tests.support.smtp import DROP, Command, SmtpServer, smtp_server, unused_port
from tocsin.channels.base import Delivery, PermanentError, RetryableError, Unaddressable
from tocsin.channels.email import EmailChannel
from tocsin.domain.models import Notification, UserProfile
from tocsin.smtp import SmtpSettings

SENDER = "Tocsin <notifications@tocsin.test>"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def channel(smtp: SmtpServer) -> EmailChannel:
    return EmailChannel(SmtpSettings(smtp.url, SENDER, timeout=10))


def delivery(*, email: str | None = "ada@example.com", name: str | None = "Ada Lovelace",
             title: str | None = "Alice commented", message: str | None = "Nice work!",
             action_url: str | None = "https://example.com/posts/7#c3") -> Delivery:
    notification = Notification(
        id=uuid.uuid4(), user_id="u-email", seq=3, type="comment", title=title, message=message,
        data={}, action_url=action_url, priority="normal", read=False, read_at=None,
        created_at=datetime.now(UTC), expires_at=None,
    )
    return Delivery(id=uuid.uuid4(), channel="email", attempts=1, notification=notification,
                    user=UserProfile(id="u-email", email=email, name=name),
                    lease_owner="test")


def parts(email: EmailMessage) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in email.iter_parts():
        assert isinstance(part, EmailMessage)
        found[part.get_content_type()] = str(part.get_content())
    return found


async def test_sends_multipart_alternative_to_the_profile_address(
    smtp: SmtpServer, channel: EmailChannel
) -> None:
    sent = delivery()
    await channel.send(sent)
    [received] = smtp.messages
    assert received.rcpt_tos == ("ada@example.com",)
    assert received.mail_from == "notifications@tocsin.test"
    email = received.email
    assert email.get_content_type() == "multipart/alternative"
    assert getaddresses([str(email["To"])]) == [("Ada Lovelace", "ada@example.com")]
    assert getaddresses([str(email["From"])]) == [("Tocsin", "notifications@tocsin.test")]
    assert email["Subject"] == "Alice commented"
    assert email["Message-ID"] == sent.message_id == f"<{sent.id}@tocsin>"
    assert email["X-Tocsin-Notification"] == str(sent.notification.id)
    assert email["Date"] is not None
    body = parts(email)
    assert sorted(body) == ["text/html", "text/plain"]
    for text in body.values():
        assert "Alice commented" in text
        assert "Nice work!" in text
        assert "https://example.com/posts/7#c3" in text
    assert '<a href="https://example.com/posts/7#c3">' in body["text/html"]


async def test_the_message_id_is_the_same_on_every_send_of_one_delivery(
    smtp: SmtpServer, channel: EmailChannel
) -> None:
    one, other = delivery(), delivery()
    await channel.send(one)
    await channel.send(one)
    await channel.send(other)
    ids = [message.message_id for message in smtp.messages]
    assert ids == [one.message_id, one.message_id, other.message_id]
    assert ids[0] != ids[2]


async def test_the_html_part_escapes_the_title_the_message_and_the_link(
    smtp: SmtpServer, channel: EmailChannel
) -> None:
    await channel.send(delivery(title="<script>alert(1)</script>",
                                message="<img src=x onerror=alert(2)> & more",
                                action_url='https://example.com/?a=1&b="><script>x</script>'))
    [received] = smtp.messages
    assert received.email["Subject"] == "<script>alert(1)</script>"
    html = parts(received.email)["text/html"]
    assert "<script>" not in html
    assert "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt; &amp; more" in html
    assert 'href="https://example.com/?a=1&amp;b=&#34;&gt;&lt;script&gt;x&lt;/script&gt;"' in html
    # The plain text part is not HTML: it carries the text as written.
    text = parts(received.email)["text/plain"]
    assert "<script>alert(1)</script>" in text
    assert 'https://example.com/?a=1&b="><script>x</script>' in text


async def test_without_a_title_the_subject_is_the_type_and_optional_parts_are_left_out(
    smtp: SmtpServer, channel: EmailChannel
) -> None:
    await channel.send(delivery(title=None, message=None, action_url=None, name=None))
    [received] = smtp.messages
    assert received.email["Subject"] == "comment"
    assert getaddresses([str(received.email["To"])]) == [("", "ada@example.com")]
    html = parts(received.email)["text/html"]
    assert "<a " not in html and "<p>" not in html


async def test_line_breaks_in_the_title_or_the_name_cannot_break_the_headers(
    smtp: SmtpServer, channel: EmailChannel
) -> None:
    await channel.send(delivery(title="Deploy failed\r\nBcc: victim@example.com",
                                name="Ada\nLovelace"))
    [received] = smtp.messages
    assert received.rcpt_tos == ("ada@example.com",)
    email = received.email
    assert email["Subject"] == "Deploy failed Bcc: victim@example.com"
    assert email["Bcc"] is None
    assert getaddresses([str(email["To"])]) == [("Ada Lovelace", "ada@example.com")]
    text = parts(email)["text/plain"]
    assert "Deploy failed" in text and "Bcc: victim@example.com" in text


async def test_a_user_without_an_email_address_is_unaddressable(
    smtp: SmtpServer, channel: EmailChannel
) -> None:
    for email in (None, ""):
        with pytest.raises(Unaddressable):
            await channel.send(delivery(email=email))
    assert smtp.messages == []
    assert smtp.commands == []


@pytest.mark.parametrize("command", ["RCPT", "DATA"])
@pytest.mark.parametrize("reply", ["421 4.3.0 try later", "450 4.2.0 mailbox busy"])
async def test_a_4xx_reply_is_retryable(smtp: SmtpServer, channel: EmailChannel,
                                        command: Command, reply: str) -> None:
    smtp.fail(command, reply)
    with pytest.raises(RetryableError, match=reply.split()[0]):
        await channel.send(delivery())
    assert smtp.messages == []
    assert f"{command} {reply}" in smtp.commands
    await channel.send(delivery())  # the server recovered: the next send goes through
    assert len(smtp.messages) == 1


@pytest.mark.parametrize("command", ["RCPT", "DATA"])
async def test_a_5xx_reply_is_permanent(smtp: SmtpServer, channel: EmailChannel,
                                        command: Command) -> None:
    smtp.fail(command, "550 5.1.1 no such user")
    with pytest.raises(PermanentError, match="550"):
        await channel.send(delivery())
    assert smtp.messages == []
    assert f"{command} 550 5.1.1 no such user" in smtp.commands


@pytest.mark.parametrize("command", ["RCPT", "DATA"])
async def test_a_dropped_connection_is_retryable(smtp: SmtpServer, channel: EmailChannel,
                                                 command: Command) -> None:
    smtp.fail(command, DROP)
    with pytest.raises(RetryableError):
        await channel.send(delivery())
    assert smtp.messages == []
    assert f"{command} {DROP}" in smtp.commands


async def test_an_unreachable_server_is_retryable() -> None:
    nowhere = EmailChannel(SmtpSettings(f"smtp+plain://127.0.0.1:{unused_port()}", SENDER,
                                        timeout=5))
    with pytest.raises(RetryableError, match="connection failed"):
        await nowhere.send(delivery())


def test_smtp_urls_are_parsed_with_their_defaults() -> None:
    plain = SmtpSettings("smtp+plain://127.0.0.1:2525", SENDER)
    assert (plain.host, plain.port, plain.tls, plain.starttls) == ("127.0.0.1", 2525, False, False)
    relay = SmtpSettings("smtp://user%40corp:p%3Ass@mail.example.com", SENDER)
    assert (relay.port, relay.tls, relay.starttls) == (25, False, None)
    assert (relay.username, relay.password) == ("user@corp", "p:ss")
    tls = SmtpSettings("smtps://mail.example.com", SENDER)
    assert (tls.port, tls.tls) == (465, True)


async def test_an_address_that_cannot_be_written_is_permanent(
    smtp: SmtpServer, channel: EmailChannel
) -> None:
    with pytest.raises(PermanentError):
        await channel.send(delivery(email="ada@example.com\r\nBcc: victim@example.com"))
    assert smtp.messages == []


def test_site_relative_links_become_absolute_or_are_left_out() -> None:
    settings = SmtpSettings("smtp+plain://127.0.0.1:25", SENDER)
    with_base = EmailChannel(settings, public_url="https://app.example/base")
    without = EmailChannel(settings)
    relative = delivery(action_url="/posts/7#c3")
    html = with_base.message(relative).get_body(("html",))
    assert html is not None and 'href="https://app.example/base/posts/7#c3"' in html.get_content()
    plain = without.message(relative).get_body(("plain",))
    assert plain is not None and "/posts/7" not in plain.get_content()
