"""Many buyers fighting over the same seats through the real HTTP stack (uvicorn, 2 workers)."""

from __future__ import annotations

import asyncio
import random

import httpx
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock.holds.scripts import register_scripts
from seatlock.holds.store import HoldStore
from seatlock.settings import Settings
from seatlock.testing.accounts import mint_accounts
from seatlock.testing.servers import NO_SHEDDING
from tests.factories import create_event
from tests.live_server import live_server

BUYERS = 200
SEATS = 50


async def test_overlapping_holds_never_share_a_seat(
    engine: AsyncEngine, settings: Settings, redis: Redis
) -> None:
    event = await create_event(engine, rows=5, seats_per_row=10)
    seat_ids = [str(s) for s in event.seat_ids]
    assert len(seat_ids) == SEATS
    buyers = await mint_accounts(engine, settings.jwt_secret, BUYERS)
    chooser = random.Random(7)
    wanted = [chooser.sample(seat_ids, chooser.randint(1, 4)) for _ in range(BUYERS)]

    with live_server(settings, workers=2, extra_env=NO_SHEDDING) as base_url:
        limits = httpx.Limits(max_connections=BUYERS)
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as http:
            responses = await asyncio.gather(
                *(
                    http.post(
                        f"/api/events/{event.id}/holds", json={"seat_ids": seats}, headers=headers
                    )
                    for seats, headers in zip(wanted, buyers, strict=True)
                )
            )

    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {201, 409}, statuses
    won = {i: r.json() for i, r in enumerate(responses) if r.status_code == 201}
    lost = {i: r.json() for i, r in enumerate(responses) if r.status_code == 409}
    assert won
    assert lost

    held_by: dict[str, int] = {}
    for i, hold in won.items():
        assert hold["seats"] == wanted[i]
        for seat in hold["seats"]:
            assert seat not in held_by, f"seat {seat} is in two live holds"
            held_by[seat] = i
    for i, problem in lost.items():
        assert problem["reason"] == "held"
        assert problem["conflicts"], problem
        assert set(problem["conflicts"]) <= set(wanted[i])
        # Every seat named as held is held by a winner, and the loser got none of its seats.
        assert all(held_by[seat] != i for seat in problem["conflicts"])
        assert all(held_by.get(seat) != i for seat in wanted[i])
    # Redis itself agrees: exactly the winners' seats are held, each by its winner's hold.
    live = await HoldStore(redis, register_scripts(redis)).held_seats(event.id)
    assert {str(seat): entry.hold_id for seat, entry in live.items()} == {
        seat: won[i]["id"] for seat, i in held_by.items()
    }
