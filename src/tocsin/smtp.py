"""`TOCSIN_SMTP_URL`, parsed: where email goes and how to log in. No I/O and nothing heavy
imported, so the settings can check the URL at start without loading the email channel."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from tocsin.domain.errors import SettingsError


class SmtpSettings:
    """From `smtp://user:pass@host:port` (STARTTLS if offered), `smtps://…` (TLS) or
    `smtp+plain://…` (never TLS, for local relays and tests)."""

    def __init__(self, url: str, sender: str, timeout: float = 15.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps", "smtp+plain") or not parts.hostname:
            raise SettingsError(f"TOCSIN_SMTP_URL: expected smtp://host:port, got {url!r}")
        try:
            port = parts.port
        except ValueError:  # not a number, or out of range
            raise SettingsError(f"TOCSIN_SMTP_URL: bad port in {url!r}") from None
        self.host = parts.hostname
        self.tls = parts.scheme == "smtps"
        self.starttls: bool | None = False if parts.scheme == "smtp+plain" else None
        self.port = port or (465 if self.tls else 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.sender = sender
        self.timeout = timeout
