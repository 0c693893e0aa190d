"""Setting up a flash sale: accounts for the organizer and the buyers, and an event of S
seats in several sections, published and on sale."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench.buyers import SeatInfo

SEATS_PER_ROW = 25
MAX_SECTIONS = 5
HOT_SECTION = "A"
PRICE_MINOR = 4500


def seat_map(seats: int) -> dict[str, Any]:
    """Exactly `seats` seats over up to five sections (A is the hot one), rows of 25."""
    sections = max(1, min(MAX_SECTIONS, seats // 10))
    described = []
    for index in range(sections):
        size = seats // sections + (1 if index < seats % sections else 0)
        full_rows, rest = divmod(size, SEATS_PER_ROW)
        blocks = []
        if full_rows:
            blocks.append(
                {
                    "rows": {"first": "1", "last": str(full_rows)},
                    "seats": {"first": 1, "last": SEATS_PER_ROW},
                    "category": "Standard",
                }
            )
        if rest:
            blocks.append(
                {
                    "rows": [str(full_rows + 1)],
                    "seats": {"first": 1, "last": rest},
                    "category": "Standard",
                }
            )
        described.append({"name": chr(ord("A") + index), "blocks": blocks})
    return {"sections": described}


def event_body(seats: int, title: str) -> dict[str, Any]:
    now = datetime.now(UTC).replace(microsecond=0)
    return {
        "title": title,
        "venue": "Benchmark Arena",
        "starts_at": (now + timedelta(days=30)).isoformat(),
        "ends_at": (now + timedelta(days=30, hours=3)).isoformat(),
        "sale_starts_at": (now - timedelta(hours=1)).isoformat(),
        "sale_ends_at": (now + timedelta(days=29)).isoformat(),
        "price_categories": [{"name": "Standard", "price_minor": PRICE_MINOR, "currency": "EUR"}],
        "seat_map": seat_map(seats),
    }


async def create_event(
    client: httpx.AsyncClient, organizer: dict[str, str], seats: int, title: str
) -> tuple[str, list[SeatInfo]]:
    response = await client.post(
        "/api/events", json=event_body(seats, title), headers=organizer, timeout=120
    )
    response.raise_for_status()
    created = response.json()
    published = await client.patch(
        f"/api/events/{created['id']}", json={"status": "on_sale"}, headers=organizer
    )
    published.raise_for_status()
    return created["id"], [
        SeatInfo(str(s["id"]), s["section"], s["row"], int(s["number"])) for s in created["seats"]
    ]
