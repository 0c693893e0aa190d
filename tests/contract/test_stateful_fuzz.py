"""Schemathesis's stateful phase against the real service (uvicorn in a subprocess): it
follows the OpenAPI links of a buyer's steps, from the list of events to a booking and its
payment, with every check on each answer."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock.models import Role
from seatlock.settings import Settings
from seatlock.testing import accounts, fuzzing
from tests.factories import create_event
from tests.live_server import live_server

# The way of a buyer from the list of events to a payment, and nothing else, so that the
# bounded scenarios get to its far end (side steps such as a release would end it early).
BUYER = (
    "listEvents",
    "getEvent",
    "createHold",
    "bookHold",
    "getBooking",
    "initiatePayment",
    "getPayment",
)
# A search that finds the event on sale, where the buyer's links start.
FINDING = {
    "query.q": "Test concert",
    "query.status": "on_sale",
    "query.starts_from": "2000-01-01T00:00:00Z",
    "query.starts_until": "2999-01-01T00:00:00Z",
}


def _fuzz(settings: Settings, buyer: dict[str, str]) -> fuzzing.Outcome:
    with live_server(settings, workers=1) as base_url:
        return fuzzing.run(
            base_url,
            buyer,
            phases=["stateful"],
            max_examples=40,
            operations=BUYER,
            # A generated search seldom finds the one event there is.
            parameters=FINDING,
        )


async def test_the_buyers_links_keep_their_contract(
    settings: Settings, engine: AsyncEngine
) -> None:
    await create_event(engine, rows=4)
    [buyer] = await accounts.mint_accounts(engine, settings.jwt_secret, 1, Role.USER)

    outcome = await asyncio.to_thread(_fuzz, settings, buyer)

    assert outcome.exit_code == 0, outcome.output
    assert outcome.failures == 0
    events, event = "GET /api/events", "GET /api/events/{event_id}"
    holds = "POST /api/events/{event_id}/holds"
    assert {
        f"{events} -> [200] getEvent -> {event}",
        f"{event} -> [200] createHold -> {holds}",
        f"{holds} -> [201] bookHold -> POST /api/bookings",
    } <= set(outcome.links), outcome.links
