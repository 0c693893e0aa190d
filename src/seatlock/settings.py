"""Settings read once from the environment into one typed object."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

import msgspec

# Long enough for every algorithm, so that development runs without key-length warnings.
DEFAULT_JWT_SECRET = "dev-only-secret-change-me-before-production-it-is-public-knowledge"
# RFC 7518 section 3.2: an HMAC key at least as long as the hash it is used with.
MIN_SECRET_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
DEFAULT_SANDBOX_SECRET = "dev-only-sandbox-secret-anyone-can-sign-payments-with-it"
# The sandbox signs with HMAC-SHA256: a key as long as the hash.
MIN_SANDBOX_SECRET_BYTES = 32
MIN_METRICS_TOKEN_BYTES = 32

# Every setting: environment variable -> field. Two keep their conventional names.
ENVIRONMENT_NAMES = {
    "DATABASE_URL": "database_url",
    "REDIS_URL": "redis_url",
}
PREFIX = "SEATLOCK_"


# A rate limit in the `limits` library's notation, "<count>/<period>" ("30/minute",
# "20 per hour", "100/5 minutes"); empty for none.
RateLimit = Annotated[
    str,
    msgspec.Meta(pattern=r"^(|\s*[0-9]+\s*(/|per)\s*([0-9]+\s*)?(second|minute|hour|day)s?\s*)$"),
]


class SettingsError(Exception):
    """The environment describes a configuration the service refuses to run with."""


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    env: Literal["development", "production", "test"] = "development"
    database_url: str = ""
    redis_url: str = ""
    redis_cluster: bool = False
    # Longer than a saturated worker's event loop runs late: a shorter timeout expired on
    # replies Redis had sent, and turned a burst of buyers into a false Redis outage.
    redis_timeout_seconds: float = 2.0
    redis_breaker_seconds: float = 0.3
    data_dir: str = ".seatlock"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    # Small, for PostgreSQL on the service's own cores: there 20 made bookings slower
    # than 1-4 in most of the benchmark's runs (bench/RESULTS.md).
    db_pool_size: int = 4
    # Freeze what a started worker holds out of the garbage collector's reach (heap.py).
    gc_freeze: bool = True
    # Load shedding (shedding.py): with this many holds and reads in hand and not yet
    # answering, a worker answers the next ones 503 at once. 0 never sheds.
    shed_backlog: Annotated[int, msgspec.Meta(ge=0)] = 32
    # ... and already with half as many once the oldest of them has waited this long (ms;
    # 0: by the count alone). Off by default: it cut the flash crowd's hold tail but shed
    # a steadier crowd more (bench/RESULTS.md).
    shed_wait_ms: Annotated[int, msgspec.Meta(ge=0)] = 0
    jwt_secret: str = DEFAULT_JWT_SECRET
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    jwt_issuer: str = "seatlock"
    jwt_audience: str = "seatlock-api"
    access_token_minutes: int = 15
    refresh_token_days: int = 30
    # How long a worker keeps trusting the feed of account changes once its reads fail (and
    # what it read of an account from PostgreSQL without the feed): the bound on how late a
    # role change, a disable or a password change reaches live access tokens through a Redis
    # outage. 0 checks every request against PostgreSQL.
    account_cache_seconds: float = 2.0
    allowed_origins: str = ""
    max_body_bytes: int = 1_048_576
    # Sign-in throttling (auth/throttle.py): failures before delays start, per account and
    # address, per address, and per account (from addresses that failed on it).
    login_attempts_per_account_address: int = 5
    login_attempts_per_address: int = 20
    login_attempts_per_account: int = 100
    login_delay_seconds: float = 1.0
    login_window_seconds: int = 900
    # Rate limits (rate_limits.py), counted in Redis.
    rate_limit_holds_per_account: RateLimit = "30/minute"
    rate_limit_holds_per_address: RateLimit = "300/minute"
    rate_limit_registrations_per_address: RateLimit = "20/hour"
    rate_limit_payments_per_account: RateLimit = "10/minute"
    image_dir: str = ""
    max_image_bytes: int = 5_242_880
    max_seats_per_event: int = 100_000
    # Empty: where the service listens (`base_url`).
    public_base_url: str = ""
    sandbox_secret: str = DEFAULT_SANDBOX_SECRET
    sandbox_in_production: bool = False
    khalti_secret_key: str = ""
    khalti_base_url: str = "https://dev.khalti.com/api/v2"
    esewa_secret_key: str = ""
    esewa_product_code: str = "EPAYTEST"
    esewa_base_url: str = "https://rc-epay.esewa.com.np"
    esewa_status_base_url: str = "https://rc.esewa.com.np"
    stripe_secret_key: str = ""
    stripe_webhook_secret: str = ""
    stripe_base_url: str = "https://api.stripe.com"
    webhook_tolerance_seconds: int = 300
    provider_timeout_seconds: float = 10.0
    idempotency_lease_seconds: float = 30.0
    cancellation_cutoff_hours: int = 24
    expiry_interval_seconds: float = 5.0
    # A bearer token that opens GET /metrics alone (a scraper's); empty: admins only.
    metrics_token: str = ""
    log_format: Literal["json", "plain"] = "json"

    @property
    def state_dir(self) -> Path:
        return Path(self.data_dir).resolve()

    @property
    def image_path(self) -> Path:
        """Where uploaded event images are stored: `image_dir`, or `images` in the data dir."""
        return Path(self.image_dir).resolve() if self.image_dir else self.state_dir / "images"

    @property
    def base_url(self) -> str:
        """The service's address as buyers' browsers reach it: `public_base_url`, or the
        host and port it listens on (a wildcard address read as this machine's loopback)."""
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        wildcards = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104 (not bound)
        host = wildcards.get(self.host, self.host)
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    @property
    def origins(self) -> frozenset[str]:
        return frozenset(
            o.strip().rstrip("/") for o in self.allowed_origins.split(",") if o.strip()
        )

    @property
    def payment_keys(self) -> dict[str, str]:
        """The secret key of each payment method's provider; the sandbox serves a method
        whose key is empty."""
        return {
            "CARD": self.stripe_secret_key,
            "KHALTI": self.khalti_secret_key,
            "ESEWA": self.esewa_secret_key,
        }

    def check(self) -> None:
        if self.env != "production":
            return
        minimum = MIN_SECRET_BYTES[self.jwt_algorithm]
        if self.jwt_secret == DEFAULT_JWT_SECRET or len(self.jwt_secret.encode()) < minimum:
            raise SettingsError(
                f"SEATLOCK_JWT_SECRET must be set to a random value of at least {minimum} "
                f"bytes for {self.jwt_algorithm} in production"
            )
        if not self.database_url or not self.redis_url:
            raise SettingsError("DATABASE_URL and REDIS_URL must be set in production")
        self._check_payments()
        if self.metrics_token and len(self.metrics_token.encode()) < MIN_METRICS_TOKEN_BYTES:
            raise SettingsError(
                f"SEATLOCK_METRICS_TOKEN must be at least {MIN_METRICS_TOKEN_BYTES} bytes in "
                "production"
            )

    def _check_payments(self) -> None:
        sandboxed = sorted(method for method, key in self.payment_keys.items() if not key)
        # The sandbox confirms any payment its checkout page is asked to: in production it
        # would give tickets away, so it serves a method only where that is asked for.
        if sandboxed and not self.sandbox_in_production:
            raise SettingsError(
                f"payment methods {', '.join(sandboxed)} have no provider keys; set them, or "
                "SEATLOCK_SANDBOX_IN_PRODUCTION=true where free sandbox payments are wanted"
            )
        if (
            self.sandbox_secret == DEFAULT_SANDBOX_SECRET
            or len(self.sandbox_secret.encode()) < MIN_SANDBOX_SECRET_BYTES
        ):
            raise SettingsError(
                f"SEATLOCK_SANDBOX_SECRET must be set to a random value of at least "
                f"{MIN_SANDBOX_SECRET_BYTES} bytes in production"
            )


def read_settings(environ: dict[str, str] | None = None) -> Settings:
    environ = dict(os.environ) if environ is None else environ
    fields = set(Settings.__struct_fields__)
    raw: dict[str, str] = {}
    for name, value in environ.items():
        if name in ENVIRONMENT_NAMES:
            raw[ENVIRONMENT_NAMES[name]] = value
        elif name.startswith(PREFIX) and name[len(PREFIX) :].lower() in fields:
            raw[name[len(PREFIX) :].lower()] = value
    try:
        # strict=False turns the environment's strings into ints, floats and bools.
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"invalid setting: {exc}") from exc
    settings.check()
    return settings


@cache
def current_settings() -> Settings:
    return read_settings()
