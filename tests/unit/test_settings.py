"""Settings from TOCSIN_* variables and a tocsin.toml; a bad one names its variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from tocsin.domain.errors import SettingsError
from tocsin.settings import load_settings

KEY_A = "publisher-key-aaaaaaaaaaaa"
KEY_B = "publisher-key-bbbbbbbbbbbb"
SECRET = "s" * 40


def write_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str) -> Path:
    path = tmp_path / "conf" / "tocsin.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    monkeypatch.setenv("TOCSIN_CONFIG", str(path))
    return path


def test_defaults_need_nothing() -> None:
    settings = load_settings()
    assert (settings.database_url, settings.host, settings.port) == (
        "sqlite:///tocsin.db", "127.0.0.1", 8000)
    assert settings.api_keys == [] and settings.allowed_origins == []
    assert settings.jwt_secret is None and settings.is_sqlite


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOCSIN_DATABASE_URL", "postgresql://tocsin@db.internal/tocsin")
    monkeypatch.setenv("TOCSIN_HOST", "10.0.0.5")
    monkeypatch.setenv("TOCSIN_PORT", "9090")
    monkeypatch.setenv("TOCSIN_API_KEYS", f" {KEY_A} ,{KEY_B},, ")
    monkeypatch.setenv("TOCSIN_ALLOWED_ORIGINS", "https://app.example, https://admin.example")
    monkeypatch.setenv("TOCSIN_JWT_SECRET", SECRET)
    monkeypatch.setenv("TOCSIN_MAX_BATCH_USERS", "7")
    settings = load_settings()
    assert settings.database_url == "postgresql://tocsin@db.internal/tocsin"
    assert not settings.is_sqlite
    assert (settings.host, settings.port) == ("10.0.0.5", 9090)
    assert settings.api_keys == [KEY_A, KEY_B]
    assert settings.allowed_origins == ["https://app.example", "https://admin.example"]
    assert settings.jwt_secret is not None
    assert settings.jwt_secret.get_secret_value() == SECRET
    assert SECRET not in repr(settings)
    assert settings.max_batch_users == 7


def test_toml_file_named_by_tocsin_config(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    write_toml(monkeypatch, tmp_path, f'''
database_url = "sqlite:///{tmp_path}/from-toml.db"
port = 8123
api_keys = ["{KEY_A}"]
allowed_origins = "https://app.example,https://b.example"
max_list_limit = 50
''')
    settings = load_settings()
    assert settings.database_url == f"sqlite:///{tmp_path}/from-toml.db"
    assert settings.port == 8123
    assert settings.api_keys == [KEY_A]
    assert settings.allowed_origins == ["https://app.example", "https://b.example"]
    assert settings.max_list_limit == 50


def test_tocsin_toml_in_the_working_directory_is_the_default(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TOCSIN_CONFIG")
    (tmp_path / "tocsin.toml").write_text("port = 8124\n")
    assert load_settings().port == 8124


def test_environment_wins_over_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    write_toml(monkeypatch, tmp_path, f'port = 8123\nhost = "10.0.0.1"\napi_keys = ["{KEY_A}"]\n')
    monkeypatch.setenv("TOCSIN_PORT", "9191")
    monkeypatch.setenv("TOCSIN_API_KEYS", KEY_B)
    settings = load_settings()
    assert (settings.port, settings.api_keys) == (9191, [KEY_B])
    assert settings.host == "10.0.0.1"


def test_explicit_overrides_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOCSIN_PORT", "9191")
    assert load_settings(port=7000).port == 7000


@pytest.mark.parametrize(("variable", "value"), [
    ("TOCSIN_PORT", "0"),
    ("TOCSIN_PORT", "65536"),
    ("TOCSIN_PORT", "eighty"),
    ("TOCSIN_JWT_SECRET", "too-short"),
    ("TOCSIN_DATABASE_URL", "mysql://root@localhost/tocsin"),
    ("TOCSIN_BUS_URL", "kafka://broker:9092"),
    ("TOCSIN_API_KEYS", f"{KEY_A},short"),
    ("TOCSIN_JWT_ALGORITHM", "none"),
    ("TOCSIN_MAX_BODY_BYTES", "10"),
    ("TOCSIN_API_KEY_CACHE_SECONDS", "-1"),
    ("TOCSIN_SMTP_URL", "http://mail.example"),
    ("TOCSIN_SMTP_URL", "smtp://mail.example:99999"),
    ("TOCSIN_STREAM_QUEUE_SIZE", "0"),
])
def test_bad_environment_variable_is_named(monkeypatch: pytest.MonkeyPatch, variable: str,
                                           value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert f"{variable}:" in raised.value.message


@pytest.mark.parametrize(("value", "limit", "per_seconds"), [
    ("100/s", 100, 1), ("6000/min", 6000, 60), (" 20000 / h ", 20000, 3600),
    ("5/second", 5, 1), ("1/Hour", 1, 3600),
])
def test_publisher_rate(monkeypatch: pytest.MonkeyPatch, value: str, limit: int,
                        per_seconds: int) -> None:
    assert load_settings().publisher_limit is None  # unset: unlimited
    monkeypatch.setenv("TOCSIN_PUBLISHER_RATE", value)
    rate = load_settings().publisher_limit
    assert rate is not None and (rate.limit, rate.per_seconds) == (limit, per_seconds)


@pytest.mark.parametrize(("value", "says"), [
    ("100", "expected <count>/s"),
    ("100/fortnight", "expected <count>/s"),
    ("-5/s", "expected <count>/s"),
    ("1.5/s", "expected <count>/s"),
    ("/s", "expected <count>/s"),
    ("", "expected <count>/s"),
    ("0/s", "between 1 and 100000"),
    ("100001/h", "between 1 and 100000"),
])
def test_a_bad_publisher_rate_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch,
                                                    value: str, says: str) -> None:
    monkeypatch.setenv("TOCSIN_PUBLISHER_RATE", value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = raised.value.message
    assert "TOCSIN_PUBLISHER_RATE:" in message and says in message, message
    assert "\n" not in message


def test_hmac_algorithm_needs_a_secret_as_long_as_its_hash(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOCSIN_JWT_ALGORITHM", "HS512")
    monkeypatch.setenv("TOCSIN_JWT_SECRET", "s" * 40)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert "TOCSIN_JWT_ALGORITHM:" in raised.value.message
    assert "TOCSIN_JWT_SECRET" in raised.value.message
    monkeypatch.setenv("TOCSIN_JWT_SECRET", "s" * 64)
    assert load_settings().jwt_algorithm == "HS512"


@pytest.mark.parametrize(("text", "variable"), [
    ("colour = 'blue'\n", "TOCSIN_COLOUR"),
    ("port = 0\n", "TOCSIN_PORT"),
    ("database_url = 'oracle://scott@tiger/db'\n", "TOCSIN_DATABASE_URL"),
    ("port = \n", "TOCSIN_CONFIG"),
])
def test_bad_toml_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str,
                           variable: str) -> None:
    path = write_toml(monkeypatch, tmp_path, text)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert f"{variable}:" in raised.value.message
    if variable == "TOCSIN_CONFIG":
        assert str(path) in raised.value.message


def test_every_problem_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOCSIN_PORT", "0")
    monkeypatch.setenv("TOCSIN_JWT_SECRET", "short")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert "TOCSIN_PORT:" in raised.value.message
    assert "TOCSIN_JWT_SECRET:" in raised.value.message


def test_misspelt_variable_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOCSIN_MAX_BODY_BYTE", "2048")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert "TOCSIN_MAX_BODY_BYTE" in raised.value.message


@pytest.mark.parametrize("url", [
    "sqlite://", "sqlite:///tocsin.db", "sqlite:////var/lib/tocsin/tocsin.db",
    "sqlite+aiosqlite:///tocsin.db", "sqlite:///file.db?mode=ro",
    "postgresql://tocsin:pw@db.internal:5432/tocsin", "postgres://tocsin@db/tocsin",
    "postgresql+asyncpg://tocsin@db/tocsin",
])
def test_database_urls_the_engine_takes(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("TOCSIN_DATABASE_URL", url)
    assert load_settings().database_url == url


@pytest.mark.parametrize(("url", "expected"), [
    ("sqlite:/tocsin.db", "'sqlite:/tocsin.db' is not a valid database URL"),
    ("sqlite:tocsin.db", "'sqlite:tocsin.db' is not a valid database URL"),
    ("sqlite://tocsin.db", "'sqlite://tocsin.db' names a host"),
    ("postgresql:/db.internal/tocsin", "the URL is not a valid database URL"),
])
def test_malformed_database_urls_are_settings_errors(monkeypatch: pytest.MonkeyPatch, url: str,
                                                     expected: str) -> None:
    monkeypatch.setenv("TOCSIN_DATABASE_URL", url)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert raised.value.message.startswith(f"invalid settings: TOCSIN_DATABASE_URL: {expected}")


def test_a_malformed_postgres_url_is_not_repeated(monkeypatch: pytest.MonkeyPatch) -> None:
    """It may hold a password, and the message lands in logs."""
    monkeypatch.setenv("TOCSIN_DATABASE_URL", "postgresql:/tocsin:hunter2@db/tocsin")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert "hunter2" not in raised.value.message


def test_tocsin_config_must_name_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for named, expected in [(tmp_path / "missing.toml", "which does not exist"),
                            (tmp_path, "which is a directory"), ("", "set but empty")]:
        monkeypatch.setenv("TOCSIN_CONFIG", str(named))
        with pytest.raises(SettingsError) as raised:
            load_settings()
        assert "TOCSIN_CONFIG" in raised.value.message and expected in raised.value.message


def test_types_from_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    write_toml(monkeypatch, tmp_path, '''
action_url_hosts = ["app.example.com"]

[types.invoice]
title = "Invoice {{ number }}"
category = "billing"
critical = true
channels = { web = true, email = true }

[types.invoice.locales.fr]
title = "Facture {{ number }}"

[types.digest]
title = "Digest"
rate_limit = { limit = 3, per_seconds = 86400 }
''')
    settings = load_settings()
    kind = settings.types["invoice"].to_type("invoice")
    assert (kind.title, kind.category, kind.critical) == ("Invoice {{ number }}", "billing", True)
    assert kind.default_channels() == {"web": True, "email": True, "push": False}
    assert kind.text_for("fr-BE").title == "Facture {{ number }}"
    assert settings.action_url_hosts == ["app.example.com"]
    digest = settings.types["digest"].to_type("digest")
    assert digest.rate_limit is not None and digest.to_json()["rate_limit"] == {
        "limit": 3, "per_seconds": 86400}
    assert kind.rate_limit is None


@pytest.mark.parametrize(("text", "words"), [
    ('[types.invoice]\ntitle = "{{ oops"\n', ["TOCSIN_TYPES", "invoice", "title",
                                              "does not compile"]),
    ('[types.invoice]\ntitle = "t"\nchannels = { pigeon = true }\n', ["TOCSIN_TYPES", "pigeon"]),
    ('[types.invoice]\ntitel = "t"\n', ["TOCSIN_TYPES", "titel"]),
    ('[types."bad name"]\ntitle = "t"\n', ["TOCSIN_TYPES", "bad name"]),
    ('[types.digest]\nrate_limit = { limit = 0, per_seconds = 60 }\n',
     ["TOCSIN_TYPES", "digest", "rate_limit", "limit"]),
    ('[types.digest]\nrate_limit = { limit = 1, per_seconds = 2592001 }\n',
     ["TOCSIN_TYPES", "digest", "rate_limit", "per_seconds"]),
])
def test_a_bad_type_stops_the_server_naming_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                               text: str, words: list[str]) -> None:
    write_toml(monkeypatch, tmp_path, text)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message
