"""The listening socket of `tocsin serve`, bound before anything else happens.

uvicorn binds only after the app has started (migrations, banner, "startup complete"), so a
port already in use would surface after all that, as a traceback. Binding first turns it into
one line, before anything is printed or touched."""

from __future__ import annotations

import errno
import socket

from tocsin.domain.errors import SettingsError


def _reason(exc: OSError, host: str) -> str:
    if isinstance(exc, socket.gaierror):
        return f"unknown host {host!r} (--host or TOCSIN_HOST)"
    if exc.errno == errno.EADDRINUSE:
        return ("the port is already in use (another tocsin serve?); choose another with "
                "--port or TOCSIN_PORT")
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine (--host or TOCSIN_HOST)"
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need privileges)"
    return exc.strerror or str(exc)


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port, ready for uvicorn (which calls listen on it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # As uvicorn does: a restart need not wait for the old connections' TIME_WAIT to pass.
    # (On Linux this does not let two servers share a port: the second still fails.)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        raise SettingsError(f"cannot listen on {shown}:{port}: {_reason(exc, host)}") from None
    sock.set_inheritable(True)
    return sock
