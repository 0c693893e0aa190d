"""The `seatlock` command: serve, migrate, create-admin, reset-password."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import msgspec
import uvicorn

from seatlock import db, migrate
from seatlock.auth.accounts import reset_password
from seatlock.auth.users import register_user
from seatlock.bodies import Email, Name, Password
from seatlock.embedded.postgres import EmbeddedPostgres
from seatlock.embedded.valkey import EmbeddedValkey
from seatlock.errors import Conflict, NotFound
from seatlock.models import Role
from seatlock.redis_client import connect_redis
from seatlock.settings import Settings, SettingsError, read_settings

logger = logging.getLogger("seatlock")


@contextmanager
def database(settings: Settings, *, owner: bool = False) -> Iterator[str]:
    """The configured PostgreSQL, or the embedded one for as long as it is needed.

    An embedded server that was already running (left by a crash, or serving) is reused;
    only its owner, `serve`, stops it when done.
    """
    if settings.database_url:
        yield settings.database_url
        return
    server = EmbeddedPostgres(settings.state_dir)
    url = server.start()
    logger.info("embedded PostgreSQL on 127.0.0.1:%s (data in %s)", server.port, server.data_dir)
    try:
        yield url
    finally:
        if owner or server.started_here:
            server.stop()


@contextmanager
def redis_server(settings: Settings) -> Iterator[str]:
    if settings.redis_url:
        yield settings.redis_url
        return
    server = EmbeddedValkey(settings.state_dir / "valkey")
    url = server.start()
    logger.info("embedded Valkey on 127.0.0.1:%s", server.port)
    try:
        yield url
    finally:
        server.stop()


def serve(settings: Settings) -> None:
    with database(settings, owner=True) as database_url, redis_server(settings) as redis_url:
        migrate.upgrade(database_url)
        # Workers are separate processes that read their settings from the environment.
        os.environ["DATABASE_URL"] = database_url
        os.environ["REDIS_URL"] = redis_url
        uvicorn.run(
            "seatlock.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level="info",
        )


def run_migrations(settings: Settings) -> None:
    with database(settings) as database_url:
        migrate.upgrade(database_url)
    print("database schema is at head")


class AdminAccount(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    password: Password
    full_name: Name


async def _create_admin(database_url: str, account: AdminAccount) -> None:
    engine = db.create_engine(database_url, pool_size=1)
    try:
        async with db.session_factory(engine)() as session:
            await register_user(
                session, account.email, account.password, account.full_name, Role.ADMIN
            )
    finally:
        await engine.dispose()


def create_admin(settings: Settings, email: str, full_name: str) -> None:
    password = getpass.getpass("Password: ")
    if password != getpass.getpass("Repeat password: "):
        sys.exit("the passwords differ")
    try:
        account = msgspec.convert(
            {"email": email, "password": password, "full_name": full_name}, AdminAccount
        )
    except msgspec.ValidationError as exc:
        sys.exit(f"invalid account: {exc}")
    with database(settings) as database_url:
        migrate.upgrade(database_url)
        try:
            asyncio.run(_create_admin(database_url, account))
        except Conflict as exc:
            sys.exit(str(exc))
    print(f"admin {account.email} created")


class NewPassword(msgspec.Struct, forbid_unknown_fields=True):
    password: Password


def _read_new_password() -> str:
    """Asked twice at a terminal; otherwise the first line of standard input."""
    if sys.stdin.isatty():
        password = getpass.getpass("New password: ")
        if password != getpass.getpass("Repeat password: "):
            sys.exit("the passwords differ")
        return password
    return sys.stdin.readline().rstrip("\r\n")


async def _reset_password(settings: Settings, database_url: str, email: str, password: str) -> None:
    engine = db.create_engine(database_url, pool_size=1)
    # Without a configured Redis there is no running service's Redis to tell: the account's
    # sessions end at once, its access tokens when they expire.
    redis = connect_redis(settings) if settings.redis_url else None
    try:
        async with db.session_factory(engine)() as session:
            await reset_password(session, redis, settings, email, password)
    finally:
        if redis is not None:
            await redis.aclose()
        await engine.dispose()


def reset_account_password(settings: Settings, email: str) -> None:
    try:
        new = msgspec.convert({"password": _read_new_password()}, NewPassword)
    except msgspec.ValidationError as exc:
        sys.exit(f"invalid password: {exc}")
    with database(settings) as database_url:
        migrate.upgrade(database_url)
        try:
            asyncio.run(_reset_password(settings, database_url, email, new.password))
        except NotFound as exc:
            sys.exit(str(exc))
    print(f"password of {email} reset; its sessions are signed out")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seatlock", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the HTTP service (embedded servers unless configured)")
    commands.add_parser("migrate", help="upgrade the database schema to the newest revision")
    admin = commands.add_parser(
        "create-admin", help="create an ADMIN account; asks for the password"
    )
    admin.add_argument("--email", required=True)
    admin.add_argument("--name", default="Administrator")
    reset = commands.add_parser(
        "reset-password",
        help="set an account's password (read from standard input) and sign it out everywhere",
    )
    reset.add_argument("--email", required=True)
    return parser


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # uvicorn re-raises the signal that stopped it; turning SIGTERM into SystemExit lets
    # the embedded servers shut down cleanly instead of the process dying on the spot.
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = read_settings()
    except SettingsError as exc:
        sys.exit(f"seatlock: {exc}")
    if args.command == "serve":
        try:
            serve(settings)
        except KeyboardInterrupt:
            logger.info("stopped")
    elif args.command == "migrate":
        run_migrations(settings)
    elif args.command == "reset-password":
        reset_account_password(settings, args.email)
    else:
        create_admin(settings, args.email, args.name)
