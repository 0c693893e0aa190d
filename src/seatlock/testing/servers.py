"""The servers a benchmark runs against: embedded PostgreSQL and Valkey in a throwaway
state directory, the service and the baseline app as uvicorn (or granian) subprocesses."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from seatlock import migrate
from seatlock.embedded.host import exit_on_sigterm, free_port
from seatlock.embedded.postgres import EmbeddedPostgres
from seatlock.embedded.valkey import EmbeddedValkey
from seatlock.serving import UVICORN_LOOP

# Long enough for every HMAC algorithm; only the benchmark's own servers use it.
BENCH_JWT_SECRET = "bench-only-jwt-secret-0123456789abcdef-0123456789abcdef"


@dataclass(frozen=True)
class Backends:
    database_url: str
    redis_url: str
    jwt_secret: str
    owned: bool


@contextmanager
def embedded_backends() -> Iterator[Backends]:
    """Fresh PostgreSQL and Valkey under /var/tmp, destroyed afterwards, also when the
    program is stopped with a SIGTERM (it then exits 143, as a process the signal killed)."""
    state = Path(tempfile.mkdtemp(prefix="seatlock-bench-", dir="/var/tmp"))
    postgres = EmbeddedPostgres(state / "pg")
    valkey = EmbeddedValkey(state / "valkey")
    with exit_on_sigterm(status=128 + signal.SIGTERM):
        try:
            database_url = postgres.start()
            redis_url = valkey.start()
            migrate.upgrade(database_url)
            yield Backends(database_url, redis_url, BENCH_JWT_SECRET, owned=True)
        finally:
            valkey.stop()
            postgres.destroy()
            shutil.rmtree(state, ignore_errors=True)


# Settings of the rate limits, which a load client (every buyer at one address) would hit.
RATE_LIMITS = (
    "rate_limit_holds_per_account",
    "rate_limit_holds_per_address",
    "rate_limit_registrations_per_address",
    "rate_limit_payments_per_account",
)


def _environment(backends: Backends, extra: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(Path.cwd()), os.environ.get("PYTHONPATH")])
        ),
        "DATABASE_URL": backends.database_url,
        "REDIS_URL": backends.redis_url,
        "SEATLOCK_JWT_SECRET": backends.jwt_secret,
        "SEATLOCK_ACCESS_TOKEN_MINUTES": "240",
        "SEATLOCK_ENV": "development",
        **{f"SEATLOCK_{name.upper()}": "" for name in RATE_LIMITS},
        **extra,
    }


SERVERS = ("uvicorn", "granian")
# The service queueing every request: for races among buyers, where every request must
# reach the seats, and for benchmarks of what one path costs.
NO_SHEDDING = {"SEATLOCK_SHED_BACKLOG": "0"}


def _server_command(server: str, app: str, port: int, workers: int) -> list[str]:
    if server == "uvicorn":
        return [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--loop",
            UVICORN_LOOP,
            "--log-level",
            "warning",
            "--no-access-log",
        ]
    if server == "granian":
        # ASGI with lifespan (not `asginl`), the same event loop (uvloop) as uvicorn's.
        return [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--loop",
            "uvloop",
            "--log-level",
            "warning",
            "--no-access-log",
            app,
        ]
    raise ValueError(f"unknown server {server!r}; one of {', '.join(SERVERS)}")


@contextmanager
def app_server(
    app: str,
    backends: Backends,
    workers: int,
    extra_env: dict[str, str] | None = None,
    server: str = "uvicorn",
) -> Iterator[str]:
    """`app` (a factory, "module:function") served by uvicorn or granian workers on a free
    port, with the same environment either way."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = _environment(backends, {"SEATLOCK_PUBLIC_BASE_URL": base_url, **(extra_env or {})})
    command = _server_command(server, app, port, workers)
    process = subprocess.Popen(command, env=env)  # noqa: S603 (a fixed command line)
    try:
        wait_until_serving(base_url, process)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def uvicorn_server(
    app: str, backends: Backends, workers: int, extra_env: dict[str, str] | None = None
) -> AbstractContextManager[str]:
    """`app` served by uvicorn workers on a free port."""
    return app_server(app, backends, workers, extra_env)


def wait_until_serving(base_url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            if httpx.get(f"{base_url}/health/live", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{base_url} did not start serving")
