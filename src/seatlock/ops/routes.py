"""Ops routes: the hold report of an event."""

from __future__ import annotations

import uuid
from typing import TypeAlias

from litestar import Router, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath

from seatlock import deps
from seatlock.auth.access import ADMINS
from seatlock.availability.layout import LayoutCache
from seatlock.holds.placement import taken_snapshot
from seatlock.holds.store import TakenSnapshot, redis_or_503
from seatlock.ops.report import HoldReportOut, build_report, read_holds

ReportLayouts: TypeAlias = NamedDependency[LayoutCache]
TakenSeats: TypeAlias = NamedDependency[TakenSnapshot]


def _layouts(state: State) -> LayoutCache:
    cache: LayoutCache = state.layouts
    return cache


def _taken(state: State) -> TakenSnapshot:
    return taken_snapshot(state.sessions)


@get("/admin/events/{event_id:uuid}/report", roles=ADMINS)
async def hold_report(
    event_id: FromPath[uuid.UUID],
    principal: deps.Caller,
    layouts: ReportLayouts,
    holds: deps.Holds,
    taken: TakenSeats,
) -> HoldReportOut:
    """Seats by state (available, held, reserved, sold) in total, per section and per price
    category; the live holds by age, those expiring within 60 s, and the 10 owners holding
    the most seats. One atomic read of Redis; 503 while Redis is unreachable."""
    layout = await layouts.layout(event_id, principal)
    async with redis_or_503():
        reading = await read_holds(holds, event_id, taken)
    return build_report(layout, reading)


ops_router = Router(
    "/api",
    route_handlers=[hold_report],
    dependencies={
        "layouts": Provide(_layouts, sync_to_thread=False),
        "taken": Provide(_taken, sync_to_thread=False),
    },
    tags=["ops"],
)
