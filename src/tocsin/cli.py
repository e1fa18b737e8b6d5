"""The `tocsin` command: serve, migrate, send, keys, token."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import httpx
import typer
import uvicorn
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tocsin import __version__
from tocsin.app import build_channels, build_store, build_worker, create_app
from tocsin.auth.keys import generate_key, hash_key
from tocsin.auth.secrets_file import beside_database, resolve_jwt_secret
from tocsin.auth.tokens import TokenAuthority
from tocsin.clock import SystemClock
from tocsin.domain.errors import TocsinError
from tocsin.server.options import uvicorn_options
from tocsin.settings import Settings, load_settings
from tocsin.store.outbox import SqlOutbox
from tocsin.store.sql import SqlStore

app = typer.Typer(help="Tocsin, the live-notification server.", no_args_is_help=True,
                  add_completion=False)
keys_app = typer.Typer(help="Publisher API keys (stored hashed; shown once).",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")
dead_app = typer.Typer(help="Deliveries that failed for good.", no_args_is_help=True)
app.add_typer(dead_app, name="dead-letters")
console = Console()
err = Console(stderr=True)
T = TypeVar("T")


def _settings(**overrides: Any) -> Settings:
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except TocsinError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from None


def _run(settings: Settings, work: Callable[[SqlStore], Awaitable[T]]) -> T:
    async def main() -> T:
        store = build_store(settings)
        try:
            await store.migrate()
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except TocsinError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None


async def _local_key(store: SqlStore, settings: Settings) -> str | None:
    """The embedded server's own publisher key, kept beside the SQLite file (0600)."""
    path = beside_database(settings, "key")
    if path is None:
        return None
    if path.exists():
        return path.read_text().strip()
    key_id, key = generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    await store.create_api_key(key_id, "local", hash_key(key), SystemClock().now())
    return key


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="bind address [TOCSIN_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="port [TOCSIN_PORT]")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
    demo: Annotated[bool | None, typer.Option("--demo/--no-demo",
                                              help="serve the demo page at / [TOCSIN_DEMO]")
                    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="server processes sharing the port "
                                                     "(needs TOCSIN_BUS_URL=redis://…)")] = 1,
) -> None:
    """Run the server (embedded SQLite unless TOCSIN_DATABASE_URL says otherwise)."""
    settings = _settings(host=host, port=port, demo=demo)
    if workers > 1 and settings.bus_url.startswith("memory://"):
        err.print("[red]error:[/red] --workers needs a shared bus: set TOCSIN_BUS_URL=redis://…"
                  " (with memory://, a process would not see the others' events)")
        raise typer.Exit(2)
    try:
        resolve_jwt_secret(settings)
    except TocsinError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from None

    async def prepare(store: SqlStore) -> str | None:
        return await _local_key(store, settings) if not settings.api_keys else None

    local_key = _run(settings, prepare)
    url = f"http://{settings.host}:{settings.port}"
    console.print(f"[bold]Tocsin {__version__}[/bold] on [link={url}]{url}[/link]  "
                  f"(API docs: {url}/docs)")
    console.print(f"database: {_redact(settings.database_url)}")
    if local_key:
        console.print(f"publisher key: [bold]{local_key}[/bold]  (kept in "
                      f"{beside_database(settings, 'key')})")
    elif settings.api_keys:
        console.print("publisher keys: those in TOCSIN_API_KEYS")
    else:
        console.print("publisher keys: create one with [bold]tocsin keys create[/bold]")
    console.print("user token:    tocsin token --user <id>   (or POST /v1/tokens)")
    if settings.demo:
        console.print(f"demo page:     [bold]{url}/[/bold]  (user 'demo'; for local use only)")
    options = uvicorn_options(settings, log_level)
    if workers == 1:
        uvicorn.run(create_app(settings), **options)
        return
    # Each process builds its own app from the environment: pass the command line on that way.
    os.environ.update({"TOCSIN_HOST": settings.host, "TOCSIN_PORT": str(settings.port),
                       "TOCSIN_DEMO": "true" if settings.demo else "false"})
    console.print(f"{workers} processes")
    uvicorn.run("tocsin.app:create_app", factory=True, workers=workers, **options)


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (serve does this at start too)."""
    settings = _settings()

    async def nothing(store: SqlStore) -> None:
        return None

    _run(settings, nothing)
    console.print(f"schema up to date: {_redact(settings.database_url)}")


@app.command()
def send(
    user: Annotated[str, typer.Option(help="user id")],
    type: Annotated[str, typer.Option(help="notification type")],
    title: Annotated[str | None, typer.Option()] = None,
    message: Annotated[str | None, typer.Option()] = None,
    data: Annotated[str, typer.Option(help="JSON object")] = "{}",
    action_url: Annotated[str | None, typer.Option()] = None,
    url: Annotated[str | None, typer.Option(help="server URL; default from TOCSIN_HOST/PORT")
                   ] = None,
    key: Annotated[str | None, typer.Option(envvar="TOCSIN_API_KEY",
                                            help="publisher key [TOCSIN_API_KEY]")] = None,
) -> None:
    """Publish one notification to a running server."""
    settings = _settings()
    key = key or _default_key(settings)
    if not key:
        err.print("[red]error:[/red] no publisher key: pass --key or set TOCSIN_API_KEY")
        raise typer.Exit(2)
    try:
        payload = json.loads(data)
    except json.JSONDecodeError as exc:
        err.print(f"[red]error:[/red] --data is not JSON: {exc}")
        raise typer.Exit(2) from None
    body = {"user_id": user, "type": type, "title": title, "message": message,
            "data": payload, "action_url": action_url}
    target = (url or f"http://{settings.host}:{settings.port}").rstrip("/")
    try:
        response = httpx.post(f"{target}/v1/notifications",
                              json={k: v for k, v in body.items() if v is not None},
                              headers={"Authorization": f"Bearer {key}"}, timeout=30)
    except httpx.HTTPError as exc:
        err.print(f"[red]error:[/red] cannot reach {target}: {exc}")
        raise typer.Exit(1) from None
    if response.status_code != 202:
        err.print(f"[red]error {response.status_code}:[/red] {response.text}")
        raise typer.Exit(1)
    for item in response.json()["notifications"]:
        console.print(f"stored {item['id']} for {item['user_id']} as seq {item['seq']}")


@app.command()
def token(
    user: Annotated[str, typer.Option(help="user id (the token's sub)")],
    ttl: Annotated[int, typer.Option(help="seconds until it expires")] = 3600,
) -> None:
    """Mint a user token with this server's secret, for trying things out."""
    settings = _settings()
    try:
        authority = TokenAuthority(resolve_jwt_secret(settings), settings.jwt_algorithm)
    except TocsinError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from None
    minted, _ = authority.mint(user, ttl)
    typer.echo(minted)


@keys_app.command("create")
def keys_create(name: Annotated[str, typer.Option(help="what the key is for")] = "default"
                ) -> None:
    """Create a key; its secret is printed once and stored only as a hash."""
    settings = _settings()
    key_id, key = generate_key()

    async def work(store: SqlStore) -> None:
        await store.create_api_key(key_id, name, hash_key(key), SystemClock().now())

    _run(settings, work)
    console.print(f"id:  {key_id}\nkey: [bold]{key}[/bold]\n(shown once: store it now)")


@keys_app.command("list")
def keys_list() -> None:
    """List keys (never their secrets)."""
    settings = _settings()
    rows = _run(settings, lambda store: store.list_api_keys())
    table = Table("id", "name", "created", "revoked")
    for row in rows:
        table.add_row(row.id, row.name, row.created_at.isoformat(timespec="seconds"),
                      row.revoked_at.isoformat(timespec="seconds") if row.revoked_at else "")
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="the key's id")]) -> None:
    """Revoke a key; nodes stop accepting it within TOCSIN_API_KEY_CACHE_SECONDS."""
    settings = _settings()
    _run(settings, lambda store: store.revoke_api_key(key_id, SystemClock().now()))
    console.print(f"revoked {key_id}")


@app.command()
def worker() -> None:
    """Run an outbox worker (outbound channels: email) until interrupted."""
    settings = _settings()
    try:
        channels = build_channels(settings)
    except TocsinError as exc:  # a malformed TOCSIN_SMTP_URL: say so, not a traceback
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from None
    if not channels:
        err.print("[red]error:[/red] no outbound channel is configured (set TOCSIN_SMTP_URL)")
        raise typer.Exit(2)

    async def work(store: SqlStore) -> None:
        the_worker = build_worker(settings, SqlOutbox(store), channels, SystemClock())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        console.print(f"worker {the_worker.owner}: channels {', '.join(sorted(channels))}")
        try:
            await the_worker.run(stop)
        finally:
            for channel in channels.values():
                await channel.close()

    _run(settings, work)


@dead_app.command("list")
def dead_letters_list(limit: Annotated[int, typer.Option(help="how many, newest first")] = 100
                      ) -> None:
    """List dead letters."""
    settings = _settings()
    rows = _run(settings, lambda store: SqlOutbox(store).dead_letters(limit))
    if not console.is_terminal:
        # Piped or redirected: one tab-separated line each, nothing shortened or wrapped, so a
        # script (or a person copying an id for `replay`) gets every value whole.
        typer.echo("id\tchannel\tuser\tattempts\tlast_error")
        for row in rows:
            typer.echo("\t".join([str(row.id), row.channel, _one_line(row.user_id),
                                  str(row.attempts), _one_line(row.last_error or "")]))
        return
    table = Table()
    table.add_column("id", no_wrap=True, min_width=36)  # whole, or it cannot be replayed
    table.add_column("channel")
    table.add_column("user", overflow="fold")
    table.add_column("attempts", justify="right", no_wrap=True, min_width=8)
    table.add_column("last error", overflow="fold")
    for row in rows:  # Text, not markup: an error or a user id may hold "[…]"
        table.add_row(str(row.id), row.channel, Text(row.user_id), str(row.attempts),
                      Text(row.last_error or ""))
    console.print(table)


@dead_app.command("replay")
def dead_letters_replay(delivery_id: Annotated[str, typer.Argument(help="the dead letter's id")]
                        ) -> None:
    """Queue a dead letter again (a running worker picks it up)."""
    settings = _settings()
    try:
        parsed = uuid.UUID(delivery_id)
    except ValueError:
        err.print(f"[red]error:[/red] {delivery_id!r} is not a delivery id")
        raise typer.Exit(2) from None
    _run(settings, lambda store: SqlOutbox(store).replay(parsed, SystemClock().now()))
    console.print(f"queued {delivery_id} again")


def _one_line(value: str) -> str:
    return " ".join(value.replace("\t", " ").splitlines())


def _default_key(settings: Settings) -> str | None:
    path = beside_database(settings, "key")
    if path is not None and path.exists():
        return path.read_text().strip()
    return settings.api_keys[0] if settings.api_keys else None


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def main() -> None:
    app()
