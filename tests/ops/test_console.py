"""The ops console against a live service (uvicorn on a real socket) and, with `--redis`,
against Redis itself: list, watch (rendered with rich's recording console, and the real
command under a pseudo-terminal, stopped with Ctrl-C), release and report."""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import pty
import re
import select
import signal
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock import keys
from seatlock.ops import console
from seatlock.ops.sources import ApiSource
from seatlock.redis_client import hash_field
from seatlock.settings import Settings
from tests.buying import book, hold
from tests.clients import PASSWORD
from tests.factories import create_event

PATIENCE_SECONDS = 20.0


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="seatlock")
    console.add_commands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def _recorder() -> Console:
    return Console(record=True, width=200, file=io.StringIO(), force_terminal=True)


async def _run(settings: Settings, *argv: str) -> str:
    """Runs a console command in a thread of its own (it runs its own event loop, while
    this one serves the service) and answers what it printed."""
    out = _recorder()
    await asyncio.to_thread(console.run, _parse(*argv), settings, out)
    return out.export_text()


async def _account(live: httpx.AsyncClient, engine: AsyncEngine, admin: bool = False) -> str:
    email = f"{uuid.uuid4().hex[:12]}@example.test"
    response = await live.post(
        "/api/auth/register", json={"email": email, "password": PASSWORD, "full_name": "Ops"}
    )
    assert response.status_code == 201, response.text
    if admin:
        async with engine.begin() as conn:
            await conn.exec_driver_sql("UPDATE users SET role = 'ADMIN' WHERE email = $1", (email,))
        response = await live.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    token: str = response.json()["access_token"]
    return token


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_list_and_release_through_the_service(
    live: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    event = await create_event(engine)
    monkeypatch.setenv("SEATLOCK_ADMIN_TOKEN", await _account(live, engine, admin=True))
    buyer = _bearer(await _account(live, engine))
    first = await hold(live, buyer, event.id, event.seat_ids[:3])
    second = await hold(live, buyer, event.id, event.seat_ids[3:4])
    url = str(live.base_url)

    listed = await _run(settings, "holds", "list", "--event", str(event.id), "--url", url)
    released = await _run(settings, "holds", "release", first, "--url", url)
    after = await _run(settings, "holds", "list", "--event", str(event.id), "--url", url)

    assert "2 live holds" in listed
    assert first in listed
    assert second in listed
    row = next(line for line in listed.splitlines() if first in line)
    # Three seats, about ten minutes left.
    _, left, seats, state, hold_id, _, _ = (cell.strip() for cell in row.split("│"))
    assert (hold_id, seats, state) == (first, "3", "held")
    assert re.fullmatch(r"9:5\d|10:00", left), row
    assert f"hold {first} released" in released
    assert "1 live holds" in after
    assert first not in after
    assert second in after
    gone = await live.get(f"/api/holds/{first}", headers=buyer)
    assert gone.status_code == 404


async def test_an_unknown_hold_or_a_refused_token_is_one_line_and_status_1(
    live: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SEATLOCK_ADMIN_TOKEN", await _account(live, engine, admin=True))
    url = str(live.base_url)
    unknown = f"{uuid.uuid4().hex}.{'x' * 24}"

    with pytest.raises(SystemExit) as gone:
        await _run(settings, "holds", "release", unknown, "--url", url)
    monkeypatch.setenv("SEATLOCK_ADMIN_TOKEN", await _account(live, engine))
    with pytest.raises(SystemExit) as refused:
        await _run(settings, "report", "--event", str(uuid.uuid4()), "--url", url)

    assert str(gone.value.code).startswith("seatlock: 404")
    assert str(refused.value.code).startswith("seatlock: 403")


async def test_report_prints_the_seats_by_state_and_the_holders(
    live: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    event = await create_event(engine)
    monkeypatch.setenv("SEATLOCK_ADMIN_TOKEN", await _account(live, engine, admin=True))
    buyer = _bearer(await _account(live, engine))
    held = await hold(live, buyer, event.id, event.seat_ids[:2])
    owner = (await live.get(f"/api/holds/{held}", headers=buyer)).json()["owner_id"]
    booked = await book(live, buyer, await hold(live, buyer, event.id, event.seat_ids[2:5]))
    assert booked.status_code == 201, booked.text

    printed = await _run(settings, "report", "--event", str(event.id), "--url", str(live.base_url))

    total = next(line for line in printed.splitlines() if line.startswith("│ total"))
    assert [cell.strip() for cell in total.split("│")[2:7]] == ["20", "15", "2", "3", "0"]
    assert "age <1 min" in printed
    holder = next(line for line in printed.splitlines() if owner in line)
    assert [cell.strip() for cell in holder.split("│")[2:4]] == ["1", "2"]


async def test_watch_shows_the_counts_the_rates_and_the_countdowns(
    live: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    event = await create_event(engine)
    source = ApiSource(str(live.base_url), await _account(live, engine, admin=True))
    buyer = _bearer(await _account(live, engine))
    kept = await hold(live, buyer, event.id, event.seat_ids[:2])
    out = _recorder()
    watching = asyncio.create_task(console.watch(source, event.id, out, refreshes=8, interval=0.25))
    # Once the first table is up the stream is being followed: a booking then shows in the
    # rates of the refreshes after it.
    deadline = time.monotonic() + PATIENCE_SECONDS
    while "live holds" not in out.export_text(clear=False):
        assert time.monotonic() < deadline, "the watch never drew"
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)
    booked = await book(live, buyer, await hold(live, buyer, event.id, event.seat_ids[5:8]))
    assert booked.status_code == 201, booked.text
    await asyncio.wait_for(watching, PATIENCE_SECONDS)
    await source.aclose()

    frames = out.export_text()
    last = frames[frames.rindex("Event ") :]
    assert "seats 20: available 15, held 2, reserved 3, sold 0" in last
    assert "live holds 1 (2 seats)" in last
    assert kept in last
    booking = next(line for line in last.splitlines() if line.startswith("│ booking"))
    changes_per_second, seats_per_second = (float(cell) for cell in booking.split("│")[2:4])
    assert changes_per_second > 0
    # Rounded to a tenth.
    assert seats_per_second == pytest.approx(3 * changes_per_second, abs=0.2)
    assert frames.count("Seat changes/s") >= 8


def _seatlock() -> str:
    return str(Path(sys.executable).with_name("seatlock"))


def _read_until(fd: int, seen: bytearray, needle: bytes, seconds: float) -> bool:
    """Reads the pseudo-terminal into `seen` until `needle` shows (or the time is up)."""
    deadline = time.monotonic() + seconds
    while needle not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the other side closed
                return needle in seen
            if not chunk:
                break
            seen += chunk
    return needle in seen


async def test_the_watch_command_stops_cleanly_on_ctrl_c(
    live: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    event = await create_event(engine)
    token = await _account(live, engine, admin=True)
    await hold(live, _bearer(await _account(live, engine)), event.id, event.seat_ids[:1])
    main, terminal = pty.openpty()
    environ = {**os.environ, "SEATLOCK_ADMIN_TOKEN": token, "COLUMNS": "200", "LINES": "60"}
    argv = ["holds", "watch", "--event", str(event.id), "--url", str(live.base_url)]
    process = await asyncio.create_subprocess_exec(
        _seatlock(), *argv, stdin=terminal, stdout=terminal, stderr=terminal, env=environ
    )
    os.close(terminal)
    seen = bytearray()
    try:
        drawn = await asyncio.to_thread(_read_until, main, seen, b"1 live holds", PATIENCE_SECONDS)
        assert drawn, seen.decode(errors="replace")
        process.send_signal(signal.SIGINT)
        status = await asyncio.wait_for(process.wait(), PATIENCE_SECONDS)
        await asyncio.to_thread(_read_until, main, seen, b"\0", 0.5)
    finally:
        if process.returncode is None:
            process.kill()
        os.close(main)

    text = seen.decode(errors="replace")
    assert status == 0, text
    assert "Traceback" not in text


async def test_with_redis_the_console_lists_reports_and_releases_without_the_service(
    live: httpx.AsyncClient,
    engine: AsyncEngine,
    settings: Settings,
    redis: Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    event = await create_event(engine)
    buyer = _bearer(await _account(live, engine))
    first = await hold(live, buyer, event.id, event.seat_ids[:2])
    second = await hold(live, buyer, event.id, event.seat_ids[2:3])
    # No service to ask, and no token.
    monkeypatch.delenv("SEATLOCK_ADMIN_TOKEN", raising=False)
    down = f"http://127.0.0.1:{1}"
    via = ("--redis", settings.redis_url, "--database", settings.database_url, "--url", down)

    listed = await _run(settings, "holds", "list", "--event", str(event.id), *via)
    reported = await _run(settings, "report", "--event", str(event.id), *via)
    watched = await _run(
        settings, "holds", "watch", "--event", str(event.id), "--refreshes", "2", *via
    )
    released = await _run(settings, "holds", "release", second, *via)

    assert "2 live holds" in listed
    assert first in listed
    assert second in listed
    total = next(line for line in reported.splitlines() if line.startswith("│ total"))
    assert [cell.strip() for cell in total.split("│")[2:7]] == ["20", "17", "3", "0", "0"]
    assert "seats 20: available 17, held 3, reserved 0, sold 0" in watched
    assert watched.count("2 live holds") >= 2
    assert f"hold {second} released" in released
    assert await hash_field(redis, keys.held_seats(event.id), str(event.seat_ids[2])) is None
    assert await hash_field(redis, keys.held_seats(event.id), str(event.seat_ids[0])) == first
    last = await redis.xrevrange(keys.seat_changes(event.id), count=1)
    assert last[0][1]["cause"] == "ops_release"
