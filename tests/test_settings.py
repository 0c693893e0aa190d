"""Settings: read from the environment once, with production refusing unsafe values."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import jwt
import pytest

from seatlock.settings import (
    DEFAULT_JWT_SECRET,
    ENVIRONMENT_NAMES,
    PREFIX,
    Settings,
    SettingsError,
    read_settings,
)

URLS = {
    "DATABASE_URL": "postgresql+asyncpg://seatlock:secret@db:5432/seatlock",
    "REDIS_URL": "redis://redis:6379/0",
}
GOOD_SECRET = "k" * 64


# What production needs besides the JWT secret and the URLs.
PAYMENTS = {"SEATLOCK_SANDBOX_IN_PRODUCTION": "true", "SEATLOCK_SANDBOX_SECRET": "z" * 32}


def _production(**environ: str) -> dict[str, str]:
    return {"SEATLOCK_ENV": "production", **URLS, **PAYMENTS, **environ}


def test_defaults_need_no_environment() -> None:
    settings = read_settings({})
    assert settings == Settings()
    assert settings.env == "development"
    assert settings.jwt_algorithm == "HS256"
    assert settings.access_token_minutes == 15
    assert settings.refresh_token_days == 30
    assert settings.database_url == settings.redis_url == ""


def test_environment_values_are_converted_to_their_types() -> None:
    settings = read_settings(
        {
            **URLS,
            "SEATLOCK_REDIS_CLUSTER": "true",
            "SEATLOCK_REDIS_TIMEOUT_SECONDS": "0.25",
            "SEATLOCK_PORT": "9000",
            "SEATLOCK_JWT_ALGORITHM": "HS384",
            "SEATLOCK_ALLOWED_ORIGINS": "https://a.example/, https://b.example",
            "SEATLOCK_LOGIN_WINDOW_SECONDS": "60",
        }
    )
    assert settings.database_url == URLS["DATABASE_URL"]
    assert settings.redis_url == URLS["REDIS_URL"]
    assert settings.redis_cluster is True
    assert settings.redis_timeout_seconds == 0.25
    assert settings.port == 9000
    assert settings.jwt_algorithm == "HS384"
    assert settings.origins == {"https://a.example", "https://b.example"}
    assert settings.login_window_seconds == 60


def test_unrelated_environment_variables_are_ignored() -> None:
    assert read_settings({"SEATLOCK_NO_SUCH_THING": "1", "PORT": "1", "HOME": "/root"}) == (
        Settings()
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SEATLOCK_PORT", "eighty"),
        ("SEATLOCK_ENV", "staging"),
        ("SEATLOCK_JWT_ALGORITHM", "none"),
        ("SEATLOCK_JWT_ALGORITHM", "RS256"),
        ("SEATLOCK_REDIS_CLUSTER", "maybe"),
    ],
)
def test_invalid_values_are_refused(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match="invalid setting"):
        read_settings({name: value})


def test_production_refuses_the_default_secret() -> None:
    with pytest.raises(SettingsError, match="SEATLOCK_JWT_SECRET"):
        read_settings(_production())


def test_production_refuses_the_default_secret_set_explicitly() -> None:
    with pytest.raises(SettingsError, match="SEATLOCK_JWT_SECRET"):
        read_settings(_production(SEATLOCK_JWT_SECRET=DEFAULT_JWT_SECRET))


@pytest.mark.parametrize(("algorithm", "shortest"), [("HS256", 32), ("HS384", 48), ("HS512", 64)])
def test_production_refuses_a_secret_shorter_than_its_algorithm_needs(
    algorithm: str, shortest: int
) -> None:
    too_short = _production(
        SEATLOCK_JWT_ALGORITHM=algorithm, SEATLOCK_JWT_SECRET="s" * (shortest - 1)
    )
    with pytest.raises(SettingsError, match="SEATLOCK_JWT_SECRET"):
        read_settings(too_short)
    long_enough = {**too_short, "SEATLOCK_JWT_SECRET": "s" * shortest}
    assert read_settings(long_enough).jwt_secret == "s" * shortest


def test_production_counts_secret_length_in_bytes() -> None:
    # 16 characters, 32 bytes in UTF-8: as long as HS256 needs.
    assert read_settings(_production(SEATLOCK_JWT_SECRET="é" * 16)).env == "production"
    with pytest.raises(SettingsError):
        read_settings(_production(SEATLOCK_JWT_SECRET="é" * 15 + "e"))


@pytest.mark.parametrize("missing", ["DATABASE_URL", "REDIS_URL"])
def test_production_refuses_to_run_without_external_servers(missing: str) -> None:
    environ = _production(SEATLOCK_JWT_SECRET=GOOD_SECRET)
    del environ[missing]
    with pytest.raises(SettingsError, match="DATABASE_URL and REDIS_URL"):
        read_settings(environ)


def test_production_accepts_a_long_random_secret() -> None:
    settings = read_settings(_production(SEATLOCK_JWT_SECRET=GOOD_SECRET))
    assert settings.env == "production"
    assert settings.jwt_secret == GOOD_SECRET


def test_development_accepts_the_default_secret() -> None:
    assert read_settings({"SEATLOCK_ENV": "development"}).jwt_secret == DEFAULT_JWT_SECRET


@pytest.mark.parametrize("algorithm", ["HS256", "HS384", "HS512"])
def test_default_secret_is_long_enough_for_every_algorithm(algorithm: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        token = jwt.encode({"sub": "x"}, DEFAULT_JWT_SECRET, algorithm=algorithm)
        assert jwt.decode(token, DEFAULT_JWT_SECRET, algorithms=[algorithm]) == {"sub": "x"}


def test_env_example_documents_every_setting() -> None:
    example = Path(__file__).resolve().parents[1] / ".env.example"
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", example.read_text(), re.MULTILINE))
    by_field = {field: name for name, field in ENVIRONMENT_NAMES.items()}
    settings = {by_field.get(f, PREFIX + f.upper()) for f in Settings.__struct_fields__}
    compose_only = {"POSTGRES_PASSWORD", "SEATLOCK_PUBLISHED_PORT"}
    assert sorted(settings - documented) == []
    assert sorted(documented - settings - compose_only) == []


@pytest.mark.parametrize(
    ("environ", "base_url"),
    [
        ({}, "http://127.0.0.1:8000"),
        ({"SEATLOCK_PORT": "9123"}, "http://127.0.0.1:9123"),
        ({"SEATLOCK_HOST": "0.0.0.0", "SEATLOCK_PORT": "9123"}, "http://127.0.0.1:9123"),
        ({"SEATLOCK_HOST": "::", "SEATLOCK_PORT": "9123"}, "http://[::1]:9123"),
        ({"SEATLOCK_HOST": "seatlock.lan"}, "http://seatlock.lan:8000"),
        (
            {"SEATLOCK_PUBLIC_BASE_URL": "https://tickets.example/", "SEATLOCK_PORT": "9123"},
            "https://tickets.example",
        ),
    ],
)
def test_the_public_base_url_defaults_to_where_the_service_listens(
    environ: dict[str, str], base_url: str
) -> None:
    assert read_settings(environ).base_url == base_url


@pytest.mark.parametrize("value", ["30/minute", "20 per hour", "100/5 minutes", ""])
def test_rate_limits_take_the_limits_notation(value: str) -> None:
    settings = read_settings({"SEATLOCK_RATE_LIMIT_HOLDS_PER_ACCOUNT": value})
    assert settings.rate_limit_holds_per_account == value


@pytest.mark.parametrize("value", ["30", "30/fortnight", "lots", "-1/minute"])
def test_a_rate_limit_that_cannot_be_read_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match="rate_limit_holds_per_account"):
        read_settings({"SEATLOCK_RATE_LIMIT_HOLDS_PER_ACCOUNT": value})
