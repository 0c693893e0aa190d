"""The `seatlock` command: create-admin, reset-password, and serve on embedded servers
with no configuration."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock import cli
from seatlock.embedded.host import free_port, running_as_root
from seatlock.embedded.postgres import EmbeddedPostgres
from seatlock.models import Role, User
from seatlock.settings import Settings
from tests.clients import PASSWORD, Client, ClientWith

ADMIN_EMAIL = "root@example.test"
# Only what a user's shell would have: no server URLs, no seatlock settings.
CONFIGURATION = ("SEATLOCK_", "DATABASE_URL", "REDIS_URL", "TEST_DATABASE_URL", "TEST_REDIS_URL")
START_DEADLINE_SECONDS = 120


def _seatlock() -> str:
    installed = Path(sys.executable).with_name("seatlock")
    found = str(installed) if installed.exists() else shutil.which("seatlock")
    assert found, "the seatlock console script is not installed"
    return found


def _bare_environment(**extra: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(CONFIGURATION)}
    return {**environ, **extra}


async def _users(engine: AsyncEngine) -> list[tuple[str, Role]]:
    async with engine.connect() as conn:
        return [(row.email, row.role) for row in await conn.execute(select(User.email, User.role))]


# create-admin


def _answers(monkeypatch: pytest.MonkeyPatch, *answers: str) -> list[str]:
    """Feeds the password prompts; returns the prompts that were shown."""
    prompts: list[str] = []
    pending = list(answers)

    def getpass(prompt: str = "Password: ") -> str:
        prompts.append(prompt)
        return pending.pop(0)

    monkeypatch.setattr("seatlock.cli.getpass.getpass", getpass)
    return prompts


async def _create_admin(settings: Settings, email: str = ADMIN_EMAIL) -> None:
    # The command runs its own event loops (Alembic's and its own), so it gets a thread.
    await asyncio.to_thread(cli.create_admin, settings, email, "Root Admin")


async def test_create_admin_makes_an_admin_who_can_sign_in(
    client: Client, settings: Settings, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompts = _answers(monkeypatch, PASSWORD, PASSWORD)
    await _create_admin(settings)
    assert len(prompts) == 2
    assert await _users(engine) == [(ADMIN_EMAIL, Role.ADMIN)]
    login = await client.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": PASSWORD})
    assert login.status_code == 200, login.text
    assert login.json()["user"]["role"] == "ADMIN"
    token = {"Authorization": f"Bearer {login.json()['access_token']}"}
    assert (await client.get("/api/admin/users", headers=token)).status_code == 200


async def test_create_admin_refuses_mismatched_passwords(
    settings: Settings, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _answers(monkeypatch, PASSWORD, PASSWORD + "!")
    with pytest.raises(SystemExit, match="the passwords differ"):
        await _create_admin(settings)
    assert await _users(engine) == []


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        (ADMIN_EMAIL, "too short", "invalid password: it needs 12 to 128 characters"),
        ("not-an-email", PASSWORD, "invalid account"),
    ],
)
async def test_create_admin_refuses_an_invalid_account(
    settings: Settings,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
    email: str,
    password: str,
    message: str,
) -> None:
    _answers(monkeypatch, password, password)
    with pytest.raises(SystemExit, match=message):
        await _create_admin(settings, email)
    assert await _users(engine) == []


async def _run_create_admin(
    settings: Settings, *args: str, stdin: str
) -> tuple[int | None, str, str]:
    process = await asyncio.create_subprocess_exec(
        _seatlock(),
        "create-admin",
        "--email",
        ADMIN_EMAIL,
        *args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_bare_environment(DATABASE_URL=settings.database_url, REDIS_URL=settings.redis_url),
        start_new_session=True,
    )
    stdout, stderr = await process.communicate(stdin.encode())
    return process.returncode, stdout.decode(), stderr.decode()


async def test_create_admin_reads_one_line_with_password_stdin(
    client: Client, settings: Settings, engine: AsyncEngine
) -> None:
    code, stdout, stderr = await _run_create_admin(settings, "--password-stdin", stdin=PASSWORD)
    assert code == 0, stderr
    assert f"admin {ADMIN_EMAIL} created" in stdout
    assert PASSWORD not in stdout + stderr
    assert await _users(engine) == [(ADMIN_EMAIL, Role.ADMIN)]
    login = await client.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": PASSWORD})
    assert login.status_code == 200, login.text


@pytest.mark.parametrize("args", [("--password-stdin",), ()])
async def test_create_admin_explains_a_short_or_missing_password_without_a_traceback(
    settings: Settings, engine: AsyncEngine, args: tuple[str, ...]
) -> None:
    # Without --password-stdin a pipe of one line used to end in EOFError at the second prompt.
    stdin = "short\n" if args else f"{PASSWORD}\n"
    code, _, stderr = await _run_create_admin(settings, *args, stdin=stdin)
    assert code == 1
    assert "Traceback" not in stderr
    expected = "invalid password: it needs 12" if args else "no password given"
    assert expected in stderr
    assert await _users(engine) == []


async def test_create_admin_promotes_an_existing_account(
    client_with: ClientWith, settings: Settings, engine: AsyncEngine
) -> None:
    async with client_with(account_cache_seconds=0) as client:
        signed_up = await client.post(
            "/api/auth/register",
            json={"email": ADMIN_EMAIL, "password": PASSWORD, "full_name": "Soon Admin"},
        )
        bearer = {"Authorization": f"Bearer {signed_up.json()['access_token']}"}
        assert (await client.get("/api/admin/users", headers=bearer)).status_code == 403

        code, stdout, stderr = await _run_create_admin(settings, "--promote", stdin="")

        assert code == 0, stderr
        assert f"{ADMIN_EMAIL} is now an admin" in stdout
        assert await _users(engine) == [(ADMIN_EMAIL, Role.ADMIN)]
        # The password is kept, and the live token counts as ADMIN at once.
        login = await client.post(
            "/api/auth/login", json={"email": ADMIN_EMAIL, "password": PASSWORD}
        )
        assert login.json()["user"]["role"] == "ADMIN"
        assert (await client.get("/api/admin/users", headers=bearer)).status_code == 200


async def test_promote_refuses_an_unknown_account(settings: Settings, engine: AsyncEngine) -> None:
    code, _, stderr = await _run_create_admin(settings, "--promote", stdin="")
    assert code == 1
    assert "no account has the email" in stderr
    assert await _users(engine) == []


async def test_create_admin_refuses_an_existing_email(
    client: Client, settings: Settings, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await client.post(
        "/api/auth/register",
        json={"email": ADMIN_EMAIL, "password": PASSWORD, "full_name": "Already Here"},
    )
    _answers(monkeypatch, PASSWORD, PASSWORD)
    with pytest.raises(SystemExit, match="already exists"):
        await _create_admin(settings, ADMIN_EMAIL.upper())
    assert await _users(engine) == [(ADMIN_EMAIL, Role.USER)]


async def test_create_admin_command_reads_the_password_without_echoing_it(
    settings: Settings, engine: AsyncEngine
) -> None:
    # A new session has no terminal, so getpass falls back to reading standard input.
    process = await asyncio.create_subprocess_exec(
        _seatlock(),
        "create-admin",
        "--email",
        ADMIN_EMAIL,
        "--name",
        "Root Admin",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_bare_environment(DATABASE_URL=settings.database_url),
        start_new_session=True,
    )
    stdout, stderr = await process.communicate(f"{PASSWORD}\n{PASSWORD}\n".encode())
    assert process.returncode == 0, stderr.decode()
    assert f"admin {ADMIN_EMAIL} created" in stdout.decode()
    assert PASSWORD not in stdout.decode() + stderr.decode()
    assert await _users(engine) == [(ADMIN_EMAIL, Role.ADMIN)]


def test_production_with_the_default_secret_refuses_to_start() -> None:
    result = subprocess.run(
        [_seatlock(), "serve"],
        env=_bare_environment(
            SEATLOCK_ENV="production",
            DATABASE_URL="postgresql+asyncpg://seatlock:x@127.0.0.1:1/seatlock",
            REDIS_URL="redis://127.0.0.1:1/0",
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "SEATLOCK_JWT_SECRET" in result.stderr


# serve, with no configuration at all


class Service:
    """One `seatlock serve` process on a data directory, and what it started."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        self.data_dir = data_dir
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environ = _bare_environment(SEATLOCK_DATA_DIR=str(data_dir), SEATLOCK_PORT=str(self.port))
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                [_seatlock(), "serve"],
                env=environ,
                cwd=data_dir.parent,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_DEADLINE_SECONDS
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"serve exited early:\n{self.log.read_text()}"
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail(f"/health/ready never answered 200:\n{self.log.read_text()}")

    def stop(self, how: signal.Signals = signal.SIGTERM) -> int:
        self.process.send_signal(how)
        return self.process.wait(timeout=60)


def _postgres_data(data_dir: Path) -> Path:
    return EmbeddedPostgres(data_dir).data_dir


def _server_pids(data_dir: Path) -> tuple[int, int]:
    """The process ids of the embedded PostgreSQL and Valkey serving data_dir."""
    postmaster = (_postgres_data(data_dir) / "postmaster.pid").read_text().splitlines()[0]
    valkey = (data_dir / "valkey" / "valkey.pid").read_text().strip()
    return int(postmaster), int(valkey)


def _valkey_port(data_dir: Path) -> int:
    config = (data_dir / "valkey" / "valkey.conf").read_text().splitlines()
    return int(next(line.split()[1] for line in config if line.startswith("port ")))


def _alive(pid: int) -> bool:
    # A zombie has exited: only its parent has yet to collect it.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _assert_all_stopped(data_dir: Path, pids: tuple[int, int], valkey_port: int) -> None:
    assert not (_postgres_data(data_dir) / "postmaster.pid").exists()
    assert not (data_dir / "valkey" / "valkey.pid").exists()
    assert [pid for pid in pids if _alive(pid)] == []
    assert not _port_open(valkey_port)


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = (tmp_path / "state").resolve()
    yield path
    # Whatever a failed test left running or on disk goes, the cluster outside tmp_path too.
    postgres = EmbeddedPostgres(path)
    postgres.stop()
    pidfile = path / "valkey" / "valkey.pid"
    if pidfile.exists():
        os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
    if running_as_root():
        shutil.rmtree(postgres.data_dir.parent, ignore_errors=True)


def _register(service: Service) -> int:
    body = {"email": ADMIN_EMAIL, "password": PASSWORD, "full_name": "Kept Across Restarts"}
    return httpx.post(f"{service.url}/api/auth/register", json=body, timeout=30).status_code


def _login(service: Service) -> int:
    body = {"email": ADMIN_EMAIL, "password": PASSWORD}
    return httpx.post(f"{service.url}/api/auth/login", json=body, timeout=30).status_code


def test_serve_without_configuration_runs_keeps_data_and_stops_cleanly(
    data_dir: Path, tmp_path: Path
) -> None:
    first = Service(data_dir, tmp_path / "serve.log")
    first.wait_until_ready()
    assert _register(first) == 201
    pids, valkey_port = _server_pids(data_dir), _valkey_port(data_dir)
    assert first.stop() == 0
    _assert_all_stopped(data_dir, pids, valkey_port)

    second = Service(data_dir, tmp_path / "serve.log")
    second.wait_until_ready()
    assert _login(second) == 200
    pids, valkey_port = _server_pids(data_dir), _valkey_port(data_dir)
    assert second.stop() == 0
    _assert_all_stopped(data_dir, pids, valkey_port)


def test_serve_takes_over_the_servers_left_by_a_crash(data_dir: Path, tmp_path: Path) -> None:
    crashed = Service(data_dir, tmp_path / "serve.log")
    crashed.wait_until_ready()
    assert _register(crashed) == 201
    left_pids, left_valkey_port = _server_pids(data_dir), _valkey_port(data_dir)
    crashed.stop(signal.SIGKILL)
    assert all(_alive(pid) for pid in left_pids)

    service = Service(data_dir, tmp_path / "serve.log")
    service.wait_until_ready()
    assert _login(service) == 200
    pids, valkey_port = _server_pids(data_dir), _valkey_port(data_dir)
    assert pids[0] == left_pids[0]  # the running PostgreSQL is reused
    assert not _alive(left_pids[1])  # the stray Valkey is stopped
    assert service.stop() == 0
    _assert_all_stopped(data_dir, pids, valkey_port)
    assert not _port_open(left_valkey_port)


# reset-password

NEW_PASSWORD = "a brand new passphrase 42"


async def test_reset_password_command_sets_the_password_and_signs_out_everywhere(
    client: Client, settings: Settings
) -> None:
    signed_up = await client.post(
        "/api/auth/register",
        json={"email": ADMIN_EMAIL, "password": PASSWORD, "full_name": "Forgetful"},
    )
    bearer = {"Authorization": f"Bearer {signed_up.json()['access_token']}"}
    cookie = signed_up.cookies["seatlock_refresh"]
    process = await asyncio.create_subprocess_exec(
        _seatlock(),
        "reset-password",
        "--email",
        ADMIN_EMAIL.upper(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_bare_environment(DATABASE_URL=settings.database_url, REDIS_URL=settings.redis_url),
        start_new_session=True,
    )
    stdout, stderr = await process.communicate(f"{NEW_PASSWORD}\n".encode())
    assert process.returncode == 0, stderr.decode()
    assert "signed out" in stdout.decode()
    assert NEW_PASSWORD not in stdout.decode() + stderr.decode()

    old = await client.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": PASSWORD})
    assert old.status_code == 401
    new = await client.post(
        "/api/auth/login", json={"email": ADMIN_EMAIL, "password": NEW_PASSWORD}
    )
    assert new.status_code == 200, new.text
    refresh = await client.post(
        "/api/auth/refresh",
        headers={"X-Requested-With": "fetch", "Cookie": f"seatlock_refresh={cookie}"},
    )
    assert refresh.status_code == 401
    assert (await client.get("/api/auth/me", headers=bearer)).status_code == 401


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        ("nobody@example.test", NEW_PASSWORD, "no account has the email"),
        (ADMIN_EMAIL, "too short", "invalid password"),
    ],
)
async def test_reset_password_refuses_unknown_accounts_and_weak_passwords(
    client: Client,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    email: str,
    password: str,
    message: str,
) -> None:
    await client.post(
        "/api/auth/register",
        json={"email": ADMIN_EMAIL, "password": PASSWORD, "full_name": "Kept"},
    )
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{password}\n"))
    with pytest.raises(SystemExit, match=message):
        await asyncio.to_thread(cli.reset_account_password, settings, email)
    login = await client.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": PASSWORD})
    assert login.status_code == 200
