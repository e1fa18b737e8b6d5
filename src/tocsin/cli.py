"""The `tocsin` command: serve, worker, migrate, send, token, keys, dead-letters.

Each command imports what it needs when it runs, never at the top of this module: `--help`,
`--version` or a typo must not wait for the web framework and the database toolkit to load.

A mistake in the configuration ends a command with one line, `error: …`, on stderr and a
non-zero status: 2 for a setting or an option, 1 for a failure at run time.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from tocsin import __version__

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    import httpx
    from rich.console import Console

    from tocsin.settings import Settings
    from tocsin.store.sql import SqlStore

app = typer.Typer(help="Tocsin, the live-notification server.", no_args_is_help=True,
                  add_completion=False)
keys_app = typer.Typer(help="Publisher API keys (stored hashed; shown once).",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")
dead_app = typer.Typer(help="Deliveries that failed for good.", no_args_is_help=True)
app.add_typer(dead_app, name="dead-letters")
T = TypeVar("T")

#: Exit statuses: a setting or an option is wrong; something failed while running.
BAD_SETTING = 2
FAILED = 1


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tocsin {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="print the version and exit")] = False,
) -> None:
    """Tocsin, the live-notification server."""


def console(*, soft_wrap: bool = False) -> Console:
    """Standard output. `soft_wrap`: lines as long as they are, never folded at the terminal's
    width (a key or a URL cut in two cannot be copied)."""
    from rich.console import Console

    return Console(soft_wrap=soft_wrap)


def fail(message: str, status: int = FAILED) -> NoReturn:
    """One line on stderr, then exit: what went wrong and, where it helps, what to change."""
    line = " ".join(message.split("\n"))
    typer.echo(f"{typer.style('error:', fg='red')} {line}", err=True)
    raise typer.Exit(status)


def _settings(**overrides: Any) -> Settings:
    from tocsin.domain.errors import TocsinError
    from tocsin.settings import load_settings

    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except TocsinError as exc:
        fail(exc.message, BAD_SETTING)


def _run(settings: Settings, work: Callable[[SqlStore], Awaitable[T]]) -> T:
    """Open the store, bring its schema up to date, run `work`, close it."""
    import asyncio

    from tocsin.domain.errors import SettingsError, TocsinError
    from tocsin.wiring import build_store

    async def main() -> T:
        store = build_store(settings)
        try:
            await store.migrate()
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except SettingsError as exc:
        fail(exc.message, BAD_SETTING)
    except TocsinError as exc:
        fail(exc.message)


def _jwt_secret(settings: Settings) -> str:
    from tocsin.auth.secrets_file import resolve_jwt_secret
    from tocsin.domain.errors import TocsinError

    try:
        return resolve_jwt_secret(settings)
    except TocsinError as exc:
        fail(exc.message, BAD_SETTING)


# -- serve ------------------------------------------------------------------------------------


def _local_key_path(settings: Settings) -> Path | None:
    from tocsin.auth.secrets_file import beside_database

    return beside_database(settings, "key")


async def _local_key(store: SqlStore, settings: Settings) -> tuple[str | None, str | None]:
    """The embedded server's own publisher key, kept beside the SQLite file (0600), as
    (its id, the key itself if this start created it, else None). The key is shown in full
    only by the start that creates it: later starts would print it into every log."""
    from tocsin.auth.keys import generate_key, hash_key, key_id_of
    from tocsin.clock import SystemClock

    path = _local_key_path(settings)
    if path is None:
        return None, None
    if path.exists():
        return key_id_of(path.read_text().strip()), None
    key_id, key = generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it at this moment
        return key_id_of(path.read_text().strip()), None
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    await store.create_api_key(key_id, "local", hash_key(key), SystemClock().now())
    return key_id, key


def _log_level(value: str) -> str:
    from tocsin.logs import LEVELS

    if value.lower() not in LEVELS:
        fail(f"--log-level must be one of {', '.join(LEVELS)}, got {value!r}", BAD_SETTING)
    return value.lower()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="bind address [TOCSIN_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="port [TOCSIN_PORT]")] = None,
    log_level: Annotated[str, typer.Option(help="critical | error | warning | info | debug "
                                                "| trace (uvicorn's and Tocsin's logs)")
                         ] = "info",
    demo: Annotated[bool | None, typer.Option("--demo/--no-demo",
                                              help="serve the demo page at / [TOCSIN_DEMO]")
                    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="server processes sharing the port "
                                                     "(needs TOCSIN_BUS_URL=redis://…)")] = 1,
) -> None:
    """Run the server (embedded SQLite unless TOCSIN_DATABASE_URL says otherwise)."""
    settings = _settings(host=host, port=port, demo=demo)
    level = _log_level(log_level)
    if workers > 1 and settings.bus_url.startswith("memory://"):
        fail("--workers needs a shared bus: set TOCSIN_BUS_URL=redis://… (with memory://, "
             "a process would not see the others' events)", BAD_SETTING)

    from tocsin.domain.errors import TocsinError
    from tocsin.listen import bind
    from tocsin.logs import configure_logging

    try:  # first: a port in use must stop us before we touch the database or print anything
        sock = bind(settings.host, settings.port)
    except TocsinError as exc:
        fail(exc.message, BAD_SETTING)
    try:
        _jwt_secret(settings)
        _serve(settings, sock, level, configure_logging(level), workers)
    finally:
        sock.close()


def _serve(settings: Settings, sock: Any, level: str, log_config: dict[str, Any],
           workers: int) -> None:
    import uvicorn

    async def prepare(store: SqlStore) -> tuple[str | None, str | None]:
        return await _local_key(store, settings) if not settings.api_keys else (None, None)

    key_id, new_key = _run(settings, prepare)
    _banner(settings, key_id, new_key)
    from tocsin.server.options import uvicorn_options

    options = {**uvicorn_options(settings, level), "log_config": log_config}
    if workers == 1:
        from tocsin.app import create_app

        server = uvicorn.Server(uvicorn.Config(create_app(settings), **options))
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: uvicorn has shut down already
            server.run(sockets=[sock])
        if not server.started:  # the app's startup failed; uvicorn logged why
            raise typer.Exit(3)
        return
    # Each process builds its own app from the environment: pass the command line on that way.
    os.environ.update({"TOCSIN_HOST": settings.host, "TOCSIN_PORT": str(settings.port),
                       "TOCSIN_DEMO": "true" if settings.demo else "false"})
    console().print(f"{workers} processes")
    # uvicorn's supervisor binds the port again for its processes: ours only proved it free.
    sock.close()
    uvicorn.run("tocsin.app:create_app", factory=True, workers=workers, **options)


def _banner(settings: Settings, key_id: str | None, new_key: str | None) -> None:
    out = console(soft_wrap=True)
    url = f"http://{settings.host}:{settings.port}"
    out.print(f"[bold]Tocsin {__version__}[/bold] on [link={url}]{url}[/link]  "
              f"(API docs: {url}/docs)")
    out.print(f"database: {_redact(settings.database_url)}", highlight=False)
    path = _local_key_path(settings)
    if new_key:
        out.print(f"publisher key: [bold]{new_key}[/bold]  (shown this once; kept in {path})",
                  highlight=False)
    elif path is not None and not settings.api_keys:
        out.print(f"publisher key: id {key_id or '?'}, kept in {path}", highlight=False)
    elif settings.api_keys:
        out.print("publisher keys: those in TOCSIN_API_KEYS")
    else:
        out.print("publisher keys: create one with [bold]tocsin keys create[/bold]")
    out.print("user token:    tocsin token --user <id>   (or POST /v1/tokens)")
    if settings.demo:
        out.print(f"demo page:     [bold]{url}/[/bold]  (user 'demo'; for local use only)")


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (serve does this at start too)."""
    settings = _settings()

    async def nothing(store: SqlStore) -> None:
        return None

    _run(settings, nothing)
    console().print(f"schema up to date: {_redact(settings.database_url)}", highlight=False)


# -- send and token ---------------------------------------------------------------------------


def _user_id_problem(user: str) -> str | None:
    """Why the API would refuse `user` as a user id (its own rule, `UserIdStr`), or None."""
    from pydantic import TypeAdapter, ValidationError

    from tocsin.api.schemas import UserIdStr

    try:
        TypeAdapter(UserIdStr).validate_python(user)
    except ValidationError as exc:
        kind = exc.errors()[0]["type"]
        return {
            "string_too_short": "must not be empty",
            "string_too_long": "is longer than 255 characters",
            "string_pattern_mismatch": "must not contain control characters",
        }.get(kind, exc.errors()[0]["msg"])
    return None


def _split(value: str | None) -> list[str] | None:
    return None if value is None else [part.strip() for part in value.split(",") if part.strip()]


def _error_of(response: httpx.Response) -> str:
    """`422 validation_error: …` from the API's `{"error": {"code", "message"}}` body."""
    try:
        error = response.json()["error"]
        return f"{response.status_code} {error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        text = " ".join(response.text.split())[:300]
        return f"HTTP {response.status_code}" + (f": {text}" if text else "")


@app.command()
def send(
    type: Annotated[str, typer.Option(help="notification type")],
    user: Annotated[str | None, typer.Option(help="user id (or --user-ids)")] = None,
    user_ids: Annotated[str | None, typer.Option(help="comma-separated user ids, instead of "
                                                      "--user")] = None,
    title: Annotated[str | None, typer.Option()] = None,
    message: Annotated[str | None, typer.Option()] = None,
    data: Annotated[str, typer.Option(help="JSON object")] = "{}",
    action_url: Annotated[str | None, typer.Option()] = None,
    priority: Annotated[str | None, typer.Option(help="low | normal | high")] = None,
    channels: Annotated[str | None, typer.Option(help="comma-separated, e.g. web,email")
                        ] = None,
    idempotency_key: Annotated[str | None, typer.Option(
        help="a retry with the same key returns the first answer and stores nothing more")
                               ] = None,
    url: Annotated[str | None, typer.Option(help="server URL; default from TOCSIN_HOST/PORT")
                   ] = None,
    key: Annotated[str | None, typer.Option(envvar="TOCSIN_API_KEY",
                                            help="publisher key [TOCSIN_API_KEY]")] = None,
) -> None:
    """Publish one notification to a running server."""
    import json

    if (user is None) == (user_ids is None):
        fail("give the recipient as --user ID or as --user-ids ID,ID,… (one of the two)",
             BAD_SETTING)
    settings = _settings()
    key = key or _default_key(settings)
    if not key:
        fail("no publisher key: pass --key or set TOCSIN_API_KEY", BAD_SETTING)
    try:
        payload = json.loads(data)
    except json.JSONDecodeError as exc:
        fail(f"--data is not JSON: {exc}", BAD_SETTING)
    body = {"user_id": user, "user_ids": _split(user_ids), "type": type, "title": title,
            "message": message, "data": payload, "action_url": action_url,
            "priority": priority, "channels": _split(channels)}
    headers = {"Authorization": f"Bearer {key}"}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    _publish(url or f"http://{settings.host}:{settings.port}",
             {k: v for k, v in body.items() if v is not None}, headers)


def _publish(target: str, body: dict[str, Any], headers: dict[str, str]) -> None:
    import httpx

    target = target.rstrip("/")
    try:
        response = httpx.post(f"{target}/v1/notifications", json=body, headers=headers,
                              timeout=30)
    except httpx.HTTPError as exc:
        fail(f"cannot reach {target}: {exc}")
    if response.status_code != 202:
        fail(_error_of(response))
    out = console(soft_wrap=True)
    if response.headers.get("idempotent-replayed") == "true":
        out.print("already stored with this Idempotency-Key: the first answer, nothing new")
    for item in response.json()["notifications"]:
        decided = item.get("channels")
        how = (", " + ", ".join(f"{name}: {what}" for name, what in decided.items())
               if isinstance(decided, dict) and decided else "")
        out.print(f"stored {item['id']} for {item['user_id']} as seq {item['seq']} "
                  f"({item.get('status', 'created')}{how})", highlight=False, markup=False)


@app.command()
def token(
    user: Annotated[str, typer.Option(help="user id (the token's sub)")],
    ttl: Annotated[int, typer.Option(help="seconds until it expires, at most "
                                          "TOCSIN_MAX_TOKEN_TTL_SECONDS")] = 3600,
) -> None:
    """Mint a user token with this server's secret, for trying things out."""
    settings = _settings()
    problem = _user_id_problem(user)
    if problem:
        fail(f"--user {problem} (a user id is 1 to 255 characters, none of them control "
             "characters)", BAD_SETTING)
    limit = settings.max_token_ttl_seconds
    if not 1 <= ttl <= limit:
        fail(f"--ttl must be between 1 and {limit} seconds (TOCSIN_MAX_TOKEN_TTL_SECONDS), "
             f"got {ttl}", BAD_SETTING)
    from tocsin.auth.tokens import TokenAuthority

    minted, _ = TokenAuthority(_jwt_secret(settings), settings.jwt_algorithm).mint(user, ttl)
    typer.echo(minted)


# -- keys ---------------------------------------------------------------------------------------


@keys_app.command("create")
def keys_create(name: Annotated[str, typer.Option(help="what the key is for")] = "default"
                ) -> None:
    """Create a key; its secret is printed once and stored only as a hash."""
    from tocsin.auth.keys import generate_key, hash_key
    from tocsin.clock import SystemClock

    settings = _settings()
    key_id, key = generate_key()

    async def work(store: SqlStore) -> None:
        await store.create_api_key(key_id, name, hash_key(key), SystemClock().now())

    _run(settings, work)
    console().print(f"id:  {key_id}\nkey: [bold]{key}[/bold]\n(shown once: store it now)")


@keys_app.command("list")
def keys_list() -> None:
    """List keys (never their secrets)."""
    from rich.table import Table
    from rich.text import Text

    settings = _settings()
    rows = _run(settings, lambda store: store.list_api_keys())
    table = Table("id", "name", "created", "revoked")
    for row in rows:
        table.add_row(row.id, Text(row.name), row.created_at.isoformat(timespec="seconds"),
                      row.revoked_at.isoformat(timespec="seconds") if row.revoked_at else "")
    console().print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="the key's id")]) -> None:
    """Revoke a key; nodes stop accepting it within TOCSIN_API_KEY_CACHE_SECONDS."""
    from tocsin.clock import SystemClock

    settings = _settings()
    _run(settings, lambda store: store.revoke_api_key(key_id, SystemClock().now()))
    console().print(f"revoked {key_id}", highlight=False, markup=False)


# -- the outbox -----------------------------------------------------------------------------


@app.command()
def worker(
    log_level: Annotated[str, typer.Option(help="critical | error | warning | info | debug")
                         ] = "info",
) -> None:
    """Run a jobs worker (topics' fan-outs, scheduled releases, the expiry sweep; outbound
    deliveries: email) until interrupted."""
    from tocsin.channels import registry
    from tocsin.domain.errors import TocsinError
    from tocsin.logs import configure_logging

    settings = _settings()
    configure_logging(_log_level(log_level))
    try:
        channels = registry.configured(settings)
    except TocsinError as exc:  # a malformed TOCSIN_SMTP_URL: say so, not a traceback
        fail(exc.message, BAD_SETTING)

    async def work(store: SqlStore) -> None:
        import asyncio
        import signal

        from tocsin.clock import SystemClock
        from tocsin.wiring import build_bus, build_jobs, build_publishing

        # A node's publishing side without its HTTP one: a fan-out publishes through the
        # pipeline, and its live events go out on the bus like any node's.
        bus = build_bus(settings)
        node = build_publishing(settings, store, SystemClock(), bus, build_jobs(store),
                                channels, wake_worker=True)
        the_worker = node.worker
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        outbound = ", ".join(sorted(channels)) or "none (set TOCSIN_SMTP_URL to send email)"
        console().print(f"worker {the_worker.owner}: fan-outs, releases, sweeps; "
                        f"channels {outbound}",
                        highlight=False, markup=False, soft_wrap=True)
        await bus.start()
        try:
            await the_worker.run(stop)
        finally:
            for channel in channels.values():
                await channel.close()
            await bus.close()

    _run(settings, work)


@dead_app.command("list")
def dead_letters_list(limit: Annotated[int, typer.Option(help="how many, newest first")] = 100
                      ) -> None:
    """List dead letters."""
    from rich.table import Table
    from rich.text import Text

    from tocsin.wiring import build_jobs

    settings = _settings()
    rows = _run(settings, lambda store: build_jobs(store).dead_letters(limit))
    out = console()
    if not out.is_terminal:
        # Piped or redirected: one tab-separated line each, nothing shortened or wrapped, so a
        # script (or a person copying an id for `replay`) gets every value whole.
        typer.echo("id\tchannel\tuser\tattempts\tlast_error")
        for row in rows:
            typer.echo("\t".join([str(row.id), row.channel or row.kind,
                                  _one_line(row.user_id or ""),
                                  str(row.attempts), _one_line(row.last_error or "")]))
        return
    table = Table()
    table.add_column("id", no_wrap=True, min_width=36)  # whole, or it cannot be replayed
    table.add_column("channel")
    table.add_column("user", overflow="fold")
    table.add_column("attempts", justify="right", no_wrap=True, min_width=8)
    table.add_column("last error", overflow="fold")
    for row in rows:  # Text, not markup: an error or a user id may hold "[…]"
        table.add_row(str(row.id), row.channel or row.kind, Text(row.user_id or ""),
                      str(row.attempts),
                      Text(row.last_error or ""))
    out.print(table)


@dead_app.command("replay")
def dead_letters_replay(delivery_id: Annotated[str, typer.Argument(help="the dead letter's id")]
                        ) -> None:
    """Queue a dead letter again (a running worker picks it up)."""
    import uuid

    from tocsin.clock import SystemClock
    from tocsin.wiring import build_jobs

    settings = _settings()
    try:
        parsed = uuid.UUID(delivery_id)
    except ValueError:
        fail(f"{delivery_id!r} is not a delivery id", BAD_SETTING)
    _run(settings, lambda store: build_jobs(store).replay(parsed, SystemClock().now()))
    console().print(f"queued {delivery_id} again", highlight=False, markup=False)


def _one_line(value: str) -> str:
    return " ".join(value.replace("\t", " ").splitlines())


def _default_key(settings: Settings) -> str | None:
    path = _local_key_path(settings)
    if path is not None and path.exists():
        return path.read_text().strip()
    return settings.api_keys[0] if settings.api_keys else None


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def main() -> None:
    app()
