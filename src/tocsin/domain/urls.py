"""Which links a notification may carry: what the widget, the emails and the apps open."""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import urlsplit


def safe_link(value: str) -> str:
    """`value` if it is an http(s) URL or a site-relative path, else `ValueError` saying why.

    Rendered as a link in browsers: never `javascript:` or `data:`. Browsers drop tabs and
    newlines and read `\\` as `/`, so `/\\evil.example` would leave the site: such characters
    must be percent-encoded."""
    if any(ch.isspace() or ch in "\\\x7f" or ord(ch) < 0x20 for ch in value):
        raise ValueError("must not contain spaces, control characters or backslashes "
                         "(percent-encode them)")
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.netloc:
        return value
    if not parts.scheme and not parts.netloc and value.startswith("/") and \
            not value.startswith("//"):
        return value
    raise ValueError("must be an http(s) URL or a path starting with /")


def allowed_link(value: str, hosts: Collection[str]) -> str:
    """A link made by a template from data a publisher passed along: a site-relative path,
    or an http(s) URL on one of `hosts` (exactly, without case). `ValueError` otherwise."""
    safe_link(value)
    host = urlsplit(value).hostname
    if host is None:
        return value  # a relative path
    if host.lower() not in {name.lower() for name in hosts}:
        allowed = ", ".join(sorted(hosts)) or "none: set TOCSIN_ACTION_URL_HOSTS"
        raise ValueError(f"links to host {host!r}, which is not allowed (allowed hosts: "
                         f"{allowed}; a path starting with / is always allowed)")
    return value
