"""The `seatlock` command: serve, migrate, create-admin, reset-password, and the ops
console (holds, report)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import get_args

import msgspec
import uvicorn

from seatlock import db, migrate
from seatlock.auth.accounts import reset_password
from seatlock.auth.user_admin import promote_to_admin
from seatlock.auth.users import register_user
from seatlock.bodies import Email, Name, Password
from seatlock.embedded.host import exit_on_sigterm
from seatlock.embedded.postgres import EmbeddedPostgres
from seatlock.embedded.valkey import EmbeddedValkey
from seatlock.errors import Conflict, NotFound
from seatlock.models import Role
from seatlock.ops import console
from seatlock.ops.metrics import prepare_multiprocess_dir
from seatlock.ops.request_log import configure_logging
from seatlock.redis_client import connect_redis
from seatlock.serving import UVICORN_LOOP
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
        prepare_multiprocess_dir(settings)
        uvicorn.run(
            "seatlock.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            # uvloop, accepting a burst of new connections without waiting a turn for each.
            loop=UVICORN_LOOP,
            log_level="info",
            # The service logs each request itself, with its route and request id.
            access_log=False,
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


def _read_admin_password(password_stdin: bool) -> str:
    """One line of standard input with --password-stdin; otherwise asked twice."""
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    try:
        password = getpass.getpass("Password: ")
        repeated = getpass.getpass("Repeat password: ")
    except EOFError:
        sys.exit("no password given: pipe it with --password-stdin, or run at a terminal")
    if password != repeated:
        sys.exit("the passwords differ")
    return password


def _checked_password(password: str) -> str:
    try:
        return msgspec.convert({"password": password}, NewPassword).password
    except msgspec.ValidationError:
        sys.exit(
            f"invalid password: it needs {PASSWORD_LENGTH.min_length} to "
            f"{PASSWORD_LENGTH.max_length} characters"
        )


def create_admin(
    settings: Settings, email: str, full_name: str, *, password_stdin: bool = False
) -> None:
    password = _checked_password(_read_admin_password(password_stdin))
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
            sys.exit(f"{exc}; --promote makes an existing account ADMIN")
    print(f"admin {account.email} created")


async def _promote(settings: Settings, database_url: str, email: str) -> None:
    engine = db.create_engine(database_url, pool_size=1)
    # Without a configured Redis the running service learns of the role within
    # SEATLOCK_ACCOUNT_CACHE_SECONDS from PostgreSQL, as after a reset-password.
    redis = connect_redis(settings) if settings.redis_url else None
    try:
        async with db.session_factory(engine)() as session:
            await promote_to_admin(session, redis, settings, email)
    finally:
        if redis is not None:
            await redis.aclose()
        await engine.dispose()


def promote_admin(settings: Settings, email: str) -> None:
    with database(settings) as database_url:
        migrate.upgrade(database_url)
        try:
            asyncio.run(_promote(settings, database_url, email))
        except NotFound as exc:
            sys.exit(f"{exc}; leave out --promote to create it")
    print(f"{email} is now an admin")


class NewPassword(msgspec.Struct, forbid_unknown_fields=True):
    password: Password


PASSWORD_LENGTH: msgspec.Meta = get_args(Password)[1]


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
    password = _checked_password(_read_new_password())
    with database(settings) as database_url:
        migrate.upgrade(database_url)
        try:
            asyncio.run(_reset_password(settings, database_url, email, password))
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
    given = admin.add_mutually_exclusive_group()
    given.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input instead of asking",
    )
    given.add_argument(
        "--promote", action="store_true", help="make an existing account ADMIN instead"
    )
    reset = commands.add_parser(
        "reset-password",
        help="set an account's password (read from standard input) and sign it out everywhere",
    )
    reset.add_argument("--email", required=True)
    console.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    # uvicorn re-raises the signal that stopped it; a SIGTERM is how a service is told to
    # stop, so it ends the command with success once the embedded servers are stopped.
    with exit_on_sigterm(status=0):
        _run(args)


def _run(args: argparse.Namespace) -> None:
    try:
        settings = read_settings()
    except SettingsError as exc:
        sys.exit(f"seatlock: {exc}")
    configure_logging(settings.log_format)
    if args.command in ("holds", "report"):
        console.run(args, settings)
    elif args.command == "serve":
        try:
            serve(settings)
        except KeyboardInterrupt:
            logger.info("stopped")
    elif args.command == "migrate":
        run_migrations(settings)
    elif args.command == "reset-password":
        reset_account_password(settings, args.email)
    elif args.promote:
        promote_admin(settings, args.email)
    else:
        create_admin(settings, args.email, args.name, password_stdin=args.password_stdin)
