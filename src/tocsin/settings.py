"""Settings: `TOCSIN_*` environment variables, then an optional `tocsin.toml`.

Every limit has a name and a default here, so an operator finds them all in one place.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from tocsin.catalog.definition import TYPE_NAME_MAX, TYPE_NAME_PATTERN, TypeDefinition
from tocsin.domain.errors import SettingsError, TocsinError
from tocsin.domain.rates import Rate

CommaList = Annotated[list[str], NoDecode]
_HMAC_KEY_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}


def _config_file() -> Path:
    return Path(os.environ.get("TOCSIN_CONFIG", "tocsin.toml"))


class Settings(BaseSettings):
    """All of Tocsin's configuration. Field `x` is the env var `TOCSIN_X` or key `x` in the toml."""

    model_config = SettingsConfigDict(env_prefix="TOCSIN_", extra="forbid", frozen=True)

    database_url: str = Field(
        default="sqlite:///tocsin.db",
        description="sqlite:///path (embedded default) or postgresql://user@host/db",
    )
    bus_url: str = Field(
        default="memory://",
        description="memory:// (one process) or redis://host:6379/0 (many processes)",
    )
    bus_publish_timeout_seconds: float = Field(
        default=1.0, gt=0, le=10,
        description="Longest a publish waits for the bus after its commit; live delivery then "
        "goes on without it (clients catch up by seq)",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    api_keys: CommaList = Field(
        default_factory=list,
        description="Comma-separated publisher keys accepted as given (simple deployments, tests).",
    )
    jwt_secret: SecretStr | None = Field(
        default=None,
        description="HS256 secret for user tokens; with SQLite, generated beside the database "
        "when unset.",
    )
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    allowed_origins: CommaList = Field(default_factory=list)

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, description="Request body limit")
    listen_backlog: int = Field(
        default=4096, ge=16, le=65535,
        description="Connections the kernel queues before the server accepts them (capped by "
        "net.core.somaxconn): a node's clients all reconnect at once when it restarts",
    )
    http_head_timeout_seconds: float = Field(
        default=10.0, gt=0, le=300,
        description="A request's line and headers must arrive within this (else 408)",
    )
    max_url_bytes: int = Field(default=8192, ge=1024, le=1024 * 1024,
                               description="Longest request URL (else 414)")
    max_header_bytes: int = Field(default=16384, ge=4096, le=1024 * 1024,
                                  description="Largest request headers, all together (else 431)")
    publisher_rate: str | None = Field(
        default=None,
        description="Requests to POST /v1/notifications per publisher key: 100/s, 6000/min or "
        "20000/h, in any sliding window of that length, all at once if they come at once (over "
        "it: 429 with Retry-After); unset: unlimited",
    )
    max_batch_users: int = Field(default=1000, ge=1, le=10_000)
    max_list_limit: int = Field(default=100, ge=1, le=1000)
    idempotency_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    max_token_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60)
    api_key_cache_seconds: float = Field(
        default=5.0, ge=0, description="How long a verified API key is trusted without a lookup."
    )
    db_pool_size: int = Field(default=20, ge=1, le=200)
    db_connect_timeout: float = Field(default=5.0, gt=0)
    db_busy_timeout_ms: int = Field(default=10_000, ge=0, description="SQLite busy timeout")

    smtp_url: str | None = Field(
        default=None,
        description="smtp://user:pass@host:587 (STARTTLS), smtps://… or smtp+plain://…; "
        "enables the email channel",
    )
    smtp_from: str = Field(default="Tocsin <notifications@localhost>")
    public_url: str | None = Field(
        default=None, pattern=r"^https?://[^\s/]+(/\S*)?$",
        description="Your application's address (https://app.example.com): site-relative "
        "action URLs become absolute against it in emails",
    )
    worker_in_process: bool = Field(
        default=True, description="Run an outbox worker inside each `tocsin serve` process"
    )
    outbox_lease_seconds: float = Field(
        default=60.0, gt=0, description="A claimed delivery is retried by another worker after this"
    )
    outbox_batch: int = Field(default=50, ge=1, le=1000)
    outbox_max_attempts: int = Field(default=8, ge=1, le=100)
    outbox_backoff_base_seconds: float = Field(default=2.0, gt=0)
    outbox_backoff_cap_seconds: float = Field(default=3600.0, gt=0)
    smtp_concurrency: int = Field(default=8, ge=1, le=256)
    fanout_batch: int = Field(
        # 100 rather than more: a batch's stages run in one stretch of the event loop, and at
        # 500 they held single publishes in the server back (p99 7.6 -> 153 ms during a
        # fan-out, against 8.1 -> 22.4 ms at 100; docs/benchmarks.md).
        default=100, ge=1, le=10_000,
        description="Subscribers a topic's fan-out expands per transaction (at most "
        "TOCSIN_MAX_BATCH_USERS: each batch is one publish)",
    )

    demo: bool = Field(default=False, description="Serve the demo page and its demo user at /")
    max_streams: int = Field(default=10_000, ge=1, description="Live streams per process")
    max_streams_per_user: int = Field(default=32, ge=1)
    max_replay: int = Field(
        default=1000, ge=1,
        description="Most notifications replayed on reconnect; a larger gap gets `resync`.",
    )
    stream_queue_size: int = Field(
        default=256, ge=8, description="Events queued per stream before it counts as too slow"
    )
    stream_send_timeout_seconds: float = Field(
        default=10.0, gt=0, description="A write stuck this long drops the stream"
    )
    stream_gap_timeout_seconds: float = Field(
        default=1.0, gt=0, description="How long a missing seq is awaited before a store read"
    )
    heartbeat_seconds: float = Field(
        default=15.0, gt=0, description="SSE comment lines and WebSocket pings"
    )
    ws_max_frame_bytes: int = Field(default=4096, ge=256, le=1024 * 1024)
    ws_compression: bool = Field(
        default=False,
        description="Offer permessage-deflate to WebSocket clients: events are small JSON, "
        "and each compressed connection holds its own zlib state, several times the memory "
        "of an idle stream")

    sweep_seconds: float = Field(
        default=60.0, ge=1, le=3600,
        description="How often the worker takes expired notifications out of the inbox")
    retention_days: int = Field(
        default=90, ge=1, le=36500,
        description="Read notifications, and those out of the inbox (expired, cancelled, "
        "suppressed), are deleted this many days after they were created")
    types: dict[str, TypeDefinition] = Field(
        default_factory=dict,
        description="Notification types, `[types.<name>]` tables in tocsin.toml (or JSON in "
        "TOCSIN_TYPES); they change or add to the built-in ones, and the API wins over both",
    )
    action_url_hosts: CommaList = Field(
        default_factory=list,
        description="Hosts a type's action_url template may link to (paths starting with / "
        "are always allowed)",
    )
    recipients_cache_seconds: float = Field(
        default=30.0, ge=0, le=3600,
        description="Longest a node keeps a recipient's profile and preferences if a change "
        "signal is lost (changes normally apply within a second); 0 reads them on every publish",
    )
    types_refresh_seconds: float = Field(
        default=30.0, gt=0, le=3600,
        description="Longest a node keeps its copy of the types when a change signal is lost",
    )

    @field_validator("types")
    @classmethod
    def _types_compile(cls, types: dict[str, TypeDefinition]) -> dict[str, TypeDefinition]:
        for name, definition in types.items():
            if len(name) > TYPE_NAME_MAX or not re.match(TYPE_NAME_PATTERN, name):
                raise ValueError(f"type name {name!r} must match {TYPE_NAME_PATTERN} "
                                 f"(at most {TYPE_NAME_MAX} characters)")
            try:
                definition.to_type(name)
            except TocsinError as exc:
                raise ValueError(f"type {name!r}: {exc.message}") from None
        return types

    @field_validator("publisher_rate")
    @classmethod
    def _rate_parses(cls, rate: str | None) -> str | None:
        if rate is not None:
            Rate.parse(rate)  # its ValueError names what is expected
        return rate

    @field_validator("api_keys", "allowed_origins", "action_url_hosts", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("api_keys")
    @classmethod
    def _keys_long_enough(cls, keys: list[str]) -> list[str]:
        for key in keys:
            if len(key) < 16:
                raise ValueError("each API key must be at least 16 characters long")
        return keys

    @field_validator("jwt_secret")
    @classmethod
    def _secret_long_enough(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None and len(secret.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (HMAC keys shorter than the hash "
                             "are guessable)")
        return secret

    @field_validator("jwt_algorithm")
    @classmethod
    def _secret_fits_algorithm(cls, algorithm: str, info: ValidationInfo) -> str:
        # RFC 7518 section 3.2: an HMAC key at least as long as the hash output.
        secret = info.data.get("jwt_secret")
        needed = _HMAC_KEY_BYTES[algorithm]
        if secret is not None and len(secret.get_secret_value().encode()) < needed:
            raise ValueError(f"{algorithm} needs a TOCSIN_JWT_SECRET of at least {needed} bytes")
        return algorithm

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, url: str) -> str:
        scheme = url.split(":", 1)[0].split("+", 1)[0]
        if scheme not in ("sqlite", "postgresql", "postgres"):
            raise ValueError(f"expected sqlite:///… or postgresql://…, got scheme {scheme!r}")
        # Parsed here, by the parser the engine uses, so a malformed URL is a one-line setting
        # error at start rather than a traceback from deep inside the first connection.
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        sqlite_forms = "sqlite:///relative/path.db or sqlite:////absolute/path.db"
        # Only a SQLite URL is repeated in the message: another may hold a password.
        shown = f"{url!r}" if scheme == "sqlite" else "the URL"
        try:
            parsed = make_url(url.replace("postgres://", "postgresql://", 1))
        except ArgumentError:
            expected = sqlite_forms if scheme == "sqlite" else "postgresql://user@host:5432/db"
            raise ValueError(f"{shown} is not a valid database URL; expected {expected}"
                             ) from None
        if scheme == "sqlite" and (parsed.host or parsed.username or parsed.port):
            raise ValueError(f"{shown} names a host, which SQLite has not (three slashes "
                             f"before a relative path, four before an absolute one); expected "
                             f"{sqlite_forms}")
        return url

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url_parses(cls, url: str | None) -> str | None:
        if url:
            from tocsin.smtp import SmtpSettings  # the one parser of SMTP URLs

            try:
                SmtpSettings(url, sender="check")
            except SettingsError as exc:
                raise ValueError(exc.message.removeprefix("TOCSIN_SMTP_URL: ")) from None
        return url

    @field_validator("bus_url")
    @classmethod
    def _known_bus(cls, url: str) -> str:
        if not url.startswith(("memory://", "redis://", "rediss://", "unix://")):
            raise ValueError(f"expected memory:// or redis://host:port/db, got {url!r}")
        return url

    @property
    def publisher_limit(self) -> Rate | None:
        return Rate.parse(self.publisher_rate) if self.publisher_rate is not None else None

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=_config_file()),
        )


#: TOCSIN_* variables that are not settings of the server: read by the CLI or the tests.
_NOT_SETTINGS = {"TOCSIN_CONFIG", "TOCSIN_API_KEY"}


def _unknown_variables() -> list[str]:
    known = {f"TOCSIN_{name.upper()}" for name in Settings.model_fields}
    return sorted(
        name for name in os.environ
        if name.startswith("TOCSIN_") and name not in known and name not in _NOT_SETTINGS
        and not name.startswith("TOCSIN_TEST_")
    )


def _check_named_config_file() -> None:
    """A file named by TOCSIN_CONFIG must exist: ignoring a mistyped path would run the server
    on defaults. The default `tocsin.toml` may be absent."""
    named = os.environ.get("TOCSIN_CONFIG")
    if named is None:
        return
    if not named.strip():
        raise SettingsError("TOCSIN_CONFIG is set but empty; name a TOML file or unset it")
    path = Path(named)
    if not path.exists():
        raise SettingsError(f"TOCSIN_CONFIG names {path}, which does not exist")
    if path.is_dir():
        raise SettingsError(f"TOCSIN_CONFIG names {path}, which is a directory, not a TOML file")


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning a validation error into one message that names each bad setting.

    An unknown TOCSIN_* variable is an error too: a misspelt limit must not silently default."""
    unknown = _unknown_variables()
    if unknown:
        raise SettingsError(f"unknown setting(s) {', '.join(unknown)}; see the README's table")
    _check_named_config_file()
    try:
        return Settings(**overrides)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"TOCSIN_CONFIG: {_config_file()} is not valid TOML: {exc}") from None
    except OSError as exc:  # the only I/O here: reading the TOML file
        raise SettingsError(f"TOCSIN_CONFIG: cannot read {_config_file()}: "
                            f"{exc.strerror or exc}") from None
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            # The setting's name as a variable; keys inside it (a type's name) as written.
            head, *inner = [str(part) for part in error["loc"]] or ["settings"]
            field = ".".join([f"TOCSIN_{head.upper()}", *inner])
            # "Value error, " is how pydantic prefixes what a validator raised: noise here.
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{field}: {message}")
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None
