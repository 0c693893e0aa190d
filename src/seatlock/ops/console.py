"""The ops console: `seatlock holds list|watch|release` and `seatlock report`, drawn with
rich. It talks to a running service's admin API, or with `--redis` to Redis itself (see
`seatlock.ops.sources`)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Final

import msgspec
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from seatlock.ops.report import CategoryReport, HoldReportOut, SectionReport, StateCounts
from seatlock.ops.sources import (
    ApiSource,
    ChangeTally,
    ConsoleError,
    HoldSource,
    LiveHolds,
    RedisSource,
    sign_in,
)
from seatlock.settings import Settings

# The causes a seat change names, in the order the watch shows them.
CAUSES: Final = (
    "hold",
    "release",
    "ops_release",
    "expiry",
    "booking",
    "payment",
    "cancellation",
    "booking_expiry",
    "refresh",
)
REFRESH_SECONDS: Final = 1.0
# Rates are averaged over about this long, so that they read steadily.
RATE_WINDOW_SECONDS: Final = 10.0
WATCHED_HOLDS: Final = 20


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The console's commands, `holds list|watch|release` and `report`."""
    holds = commands.add_parser("holds", help="the live holds of an event: list, watch, release")
    actions = holds.add_subparsers(dest="holds_command", required=True)
    listing = actions.add_parser("list", help="the live holds, soonest to expire first")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (100)")
    watching = actions.add_parser(
        "watch", help="a live table, refreshed every second, until Ctrl-C"
    )
    watching.add_argument("--refreshes", type=int, metavar="N", help="stop after N refreshes")
    release = actions.add_parser("release", help="free a hold's seats, whoever holds it")
    release.add_argument("hold_id", metavar="HOLD_ID")
    report = commands.add_parser(
        "report", help="an event's seats by state and its live holds by age and holder"
    )
    for parser in (listing, watching, report):
        parser.add_argument("--event", type=uuid.UUID, required=True, metavar="ID")
    for parser in (listing, watching, release, report):
        parser.add_argument(
            "--url",
            help="the service's address (default http://127.0.0.1:$SEATLOCK_PORT, or port "
            "8000); the admin token comes from SEATLOCK_ADMIN_TOKEN, or a sign-in prompt",
        )
        parser.add_argument(
            "--redis",
            metavar="URL",
            help="read Redis directly instead of the service (for when it is down)",
        )
        parser.add_argument(
            "--database",
            metavar="URL",
            help="with --redis: PostgreSQL for a report's seat layout (default DATABASE_URL)",
        )


def _countdown(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    return f"{seconds // 60}:{seconds % 60:02d}"


def holds_table(holds: LiveHolds) -> Table:
    """The live holds, soonest to expire first, with the time each has left."""
    table = Table(title=f"{holds.total} live holds", title_justify="left")
    table.add_column("left", justify="right", no_wrap=True)
    table.add_column("seats", justify="right", no_wrap=True)
    table.add_column("state", no_wrap=True)
    # Folded rather than cut, so that an id can always be copied to release the hold.
    table.add_column("hold", overflow="fold")
    table.add_column("owner", overflow="fold")
    for hold in sorted(holds.holds, key=lambda h: h.seconds_left):
        table.add_row(
            _countdown(hold.seconds_left),
            str(len(hold.seats)),
            hold.state,
            hold.id,
            str(hold.owner_id),
        )
    if holds.total > len(holds.holds):
        table.caption = f"the {len(holds.holds)} soonest to expire are shown"
    return table


def states_table(report: HoldReportOut) -> Table:
    """Seats by state in total, per section and per price category."""
    table = Table(title="Seats by state", title_justify="left")
    for name, justify in (("", "left"), ("seats", "right"), ("available", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for name in ("held", "reserved", "sold"):
        table.add_column(name, justify="right")
    rows: list[tuple[str, StateCounts | SectionReport | CategoryReport]]
    rows = [("total", report.totals)]
    rows += [(f"section {s.name}", s) for s in report.sections]
    rows += [(f"category {c.name}", c) for c in report.price_categories]
    for label, c in rows:
        table.add_row(label, *(str(n) for n in (c.seats, c.available, c.held, c.reserved, c.sold)))
    return table


def holds_summary(report: HoldReportOut) -> Table:
    figures = report.holds
    table = Table(title="Live holds", title_justify="left")
    table.add_column("")
    table.add_column("holds", justify="right")
    table.add_column("seats", justify="right")
    table.add_row("live", str(figures.live), str(figures.seats))
    for bucket in figures.by_age:
        table.add_row(f"age {bucket.label}", str(bucket.holds), str(bucket.seats))
    soon = figures.expiring_soon
    table.add_row(f"expiring within {soon.within_seconds} s", str(soon.holds), str(soon.seats))
    table.add_row("being booked", str(figures.converting), "")
    return table


def top_holders_table(report: HoldReportOut) -> Table:
    table = Table(title="Top holders", title_justify="left")
    table.add_column("owner", no_wrap=True)
    table.add_column("holds", justify="right")
    table.add_column("seats", justify="right")
    for holder in report.top_holders:
        table.add_row(str(holder.owner_id), str(holder.holds), str(holder.seats))
    return table


def report_view(report: HoldReportOut) -> Group:
    heading = Text(
        f"Event {report.event_id} at version {report.version}, "
        f"{report.generated_at:%Y-%m-%d %H:%M:%S} UTC",
        style="bold",
    )
    return Group(heading, states_table(report), holds_summary(report), top_holders_table(report))


@dataclass(frozen=True)
class Rates:
    """Seat changes per second over the last few refreshes, by cause."""

    changes: dict[str, float]
    seats: dict[str, float]

    @classmethod
    def between(cls, before: ChangeTally, after: ChangeTally, seconds: float) -> Rates:
        seconds = max(seconds, 1e-3)
        return cls(
            {c: (after.changes[c] - before.changes[c]) / seconds for c in CAUSES},
            {c: (after.seats[c] - before.seats[c]) / seconds for c in CAUSES},
        )


def rates_table(rates: Rates | None) -> Table:
    table = Table(
        title=f"Seat changes/s (last {RATE_WINDOW_SECONDS:.0f} s)",
        title_justify="left",
    )
    table.add_column("cause")
    table.add_column("changes/s", justify="right")
    table.add_column("seats/s", justify="right")
    for cause in CAUSES:
        if rates is None:
            table.add_row(cause, "…", "…")
        else:
            table.add_row(cause, f"{rates.changes[cause]:.1f}", f"{rates.seats[cause]:.1f}")
    return table


def watch_view(report: HoldReportOut, holds: LiveHolds, rates: Rates | None) -> Group:
    totals, figures = report.totals, report.holds
    conversions = "…" if rates is None else f"{rates.changes['booking']:.1f}"
    expiries = "…" if rates is None else f"{rates.seats['expiry']:.1f}"
    heading = Text.assemble(
        (f"Event {report.event_id}", "bold"),
        f"  version {report.version}  {report.generated_at:%H:%M:%S} UTC\n",
        f"seats {totals.seats}: available {totals.available}, held {totals.held}, "
        f"reserved {totals.reserved}, sold {totals.sold}\n",
        f"live holds {figures.live} ({figures.seats} seats), being booked "
        f"{figures.converting}, expiring within {figures.expiring_soon.within_seconds} s "
        f"{figures.expiring_soon.holds} ({figures.expiring_soon.seats} seats)\n",
        f"conversions/s {conversions}  expired seats/s {expiries}",
    )
    return Group(heading, rates_table(rates), holds_table(holds))


async def watch(
    source: HoldSource,
    event_id: uuid.UUID,
    console: Console,
    refreshes: int | None = None,
    interval: float = REFRESH_SECONDS,
    limit: int = WATCHED_HOLDS,
) -> None:
    """A live table refreshed every `interval` until Ctrl-C, or `refreshes` refreshes."""
    tally = ChangeTally()
    following = asyncio.create_task(source.follow(event_id, tally))
    # (when, the tally then) of the refreshes within the rates' window, oldest first.
    samples: deque[tuple[float, ChangeTally]] = deque([(time.monotonic(), tally.copy())])
    try:
        with Live(console=console, auto_refresh=False, redirect_stderr=False) as live:
            done, rates = 0, None
            while True:
                report = await source.report(event_id)
                holds = await source.holds(event_id, limit)
                live.update(watch_view(report, holds, rates), refresh=True)
                done += 1
                if refreshes is not None and done >= refreshes:
                    break
                await asyncio.sleep(interval)
                now = time.monotonic()
                samples.append((now, tally.copy()))
                while len(samples) > 2 and now - samples[1][0] >= RATE_WINDOW_SECONDS:
                    samples.popleft()
                (then, before), after = samples[0], samples[-1][1]
                rates = Rates.between(before, after, now - then)
    finally:
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)


async def _token(url: str) -> str:
    if token := os.environ.get("SEATLOCK_ADMIN_TOKEN"):
        return token
    try:
        email = await asyncio.to_thread(input, "Admin email: ")
        password = await asyncio.to_thread(getpass.getpass, "Password: ")
    except EOFError as exc:
        raise ConsoleError("no token: set SEATLOCK_ADMIN_TOKEN, or run at a terminal") from exc
    return await sign_in(url, email, password)


async def open_source(args: argparse.Namespace, settings: Settings) -> HoldSource:
    if args.redis:
        database = args.database or settings.database_url
        changes = {"redis_url": args.redis, "database_url": database}
        return RedisSource(msgspec.structs.replace(settings, **changes))
    url = (args.url or f"http://127.0.0.1:{settings.port}").rstrip("/")
    return ApiSource(url, await _token(url))


async def _run(args: argparse.Namespace, settings: Settings, console: Console) -> None:
    source = await open_source(args, settings)
    try:
        if args.command == "report":
            console.print(report_view(await source.report(args.event)))
        elif args.holds_command == "list":
            console.print(holds_table(await source.holds(args.event, args.limit)))
        elif args.holds_command == "release":
            await source.release(args.hold_id)
            console.print(f"hold {args.hold_id} released")
        else:
            await watch(source, args.event, console, args.refreshes)
    finally:
        await source.aclose()


def run(args: argparse.Namespace, settings: Settings, console: Console | None = None) -> None:
    """Runs one console command; a problem is one line on standard error and exit status 1,
    Ctrl-C a quiet stop."""
    console = console or Console()
    # Each request to the service would be logged at INFO otherwise, over the tables.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        asyncio.run(_run(args, settings, console))
    except ConsoleError as exc:
        raise SystemExit(f"seatlock: {exc}") from None
    except KeyboardInterrupt:
        pass
