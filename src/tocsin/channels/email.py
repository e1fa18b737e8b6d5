"""Email over SMTP (aiosmtplib): multipart plain text + HTML, one stable Message-ID a delivery."""

from __future__ import annotations

import asyncio
import ssl
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from urllib.parse import urljoin

import aiosmtplib
from jinja2.sandbox import SandboxedEnvironment

from tocsin.channels.base import Delivery, PermanentError, RetryableError, Unaddressable
from tocsin.smtp import SmtpSettings

# Sandboxed: templates will come from publishers. HTML autoescaped; the plain text part is not
# HTML, so it is not escaped.
_HTML = SandboxedEnvironment(autoescape=True).from_string(
    """<!doctype html><html><body style="font-family:sans-serif">
<h2 style="margin:0 0 8px">{{ title }}</h2>
{% if message %}<p>{{ message }}</p>{% endif %}
{% if action_url %}<p><a href="{{ action_url }}">Open</a></p>{% endif %}
</body></html>"""
)
_TEXT = SandboxedEnvironment(autoescape=False).from_string(
    "{{ title }}\n{% if message %}\n{{ message }}\n{% endif %}"
    "{% if action_url %}\n{{ action_url }}\n{% endif %}"
)


class EmailChannel:
    """Sends each delivery to the address in the user's profile.

    SMTP replies 4xx and connection failures are retryable; 5xx replies are permanent."""

    name = "email"

    def __init__(self, settings: SmtpSettings, concurrency: int = 4,
                 public_url: str | None = None) -> None:
        # Site-relative action URLs ("/posts/7") mean nothing in a mail client: they are made
        # absolute against the public URL of the application, or left out.
        self._public_url = public_url.rstrip("/") + "/" if public_url else None
        self._settings = settings
        self._slots = asyncio.Semaphore(concurrency)

    def message(self, delivery: Delivery) -> EmailMessage:
        item, user = delivery.notification, delivery.user
        if not user.email:
            raise Unaddressable("the user has no email address")
        title = item.title or item.type
        link = self._link(item.action_url)
        fields = {"title": title, "message": item.message, "action_url": link}
        email = EmailMessage()
        email["From"] = self._settings.sender
        email["To"] = formataddr((_one_line(user.name or ""), user.email))
        email["Subject"] = _one_line(title)
        email["Date"] = formatdate(usegmt=True)
        email["Message-ID"] = delivery.message_id
        email["X-Tocsin-Notification"] = str(item.id)
        email.set_content(_TEXT.render(**fields))
        email.add_alternative(_HTML.render(**fields), subtype="html")
        return email

    def _link(self, action_url: str | None) -> str | None:
        if not action_url or not action_url.startswith("/"):
            return action_url
        return urljoin(self._public_url, action_url.lstrip("/")) if self._public_url else None

    async def send(self, delivery: Delivery) -> None:
        try:
            email = self.message(delivery)
        except ValueError as exc:  # no attempt can ever build it: do not retry
            raise PermanentError(f"cannot build the email: {exc}") from exc
        s = self._settings
        async with self._slots:
            try:
                await aiosmtplib.send(
                    email, hostname=s.host, port=s.port, username=s.username,
                    password=s.password, use_tls=s.tls, start_tls=s.starttls,
                    timeout=s.timeout,
                )
            except aiosmtplib.SMTPRecipientsRefused as exc:
                codes = [error.code for error in exc.recipients]
                raise _by_code(min(codes), str(exc)) from exc
            except aiosmtplib.SMTPResponseException as exc:
                raise _by_code(exc.code, f"{exc.code} {exc.message}") from exc
            except (aiosmtplib.SMTPException, OSError, TimeoutError, ssl.SSLError) as exc:
                raise RetryableError(f"SMTP connection failed: {exc}") from exc
            except ValueError as exc:  # an address aiosmtplib refuses to put on the wire
                raise PermanentError(f"cannot send to this address: {exc}") from exc

    async def close(self) -> None:
        return None


def _one_line(value: str) -> str:
    """A header value on one line: titles and names may hold line breaks, and a header with one
    cannot be written (nor may it smuggle in another header)."""
    return " ".join(value.split())


def _by_code(code: int, text: str) -> Exception:
    if 400 <= code < 500:
        return RetryableError(f"SMTP {text}")
    return PermanentError(f"SMTP {text}")
