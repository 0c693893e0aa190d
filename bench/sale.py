"""Setting up a flash sale: an event of S seats in several sections, published and on
sale, and what the buyers know of its seats."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

SEATS_PER_ROW = 25
MAX_SECTIONS = 5
HOT_SECTION = "A"
PRICE_MINOR = 4500
# The shortest hold and payment window an event may have: abandoned holds and unpaid
# bookings give their seats back within a run (the expiry sweep runs every 5 s).
SHORT_POLICY = {
    "hold_ttl_seconds": 30,
    "max_hold_lifetime_seconds": 30,
    "payment_window_seconds": 60,
}


@dataclass(frozen=True)
class SeatInfo:
    id: str
    section: str
    row: str
    number: int

    @property
    def row_number(self) -> int:
        """Rows are numbered from the stage: row 1 is the front row."""
        return int(self.row) if self.row.isdigit() else 0


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


def event_body(seats: int, title: str, policy: dict[str, int] | None = None) -> dict[str, Any]:
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
        **(policy or {}),
    }


async def create_event(
    client: httpx.AsyncClient,
    organizer: dict[str, str],
    seats: int,
    title: str,
    policy: dict[str, int] | None = None,
) -> tuple[str, list[SeatInfo]]:
    response = await client.post(
        "/api/events", json=event_body(seats, title, policy), headers=organizer, timeout=120
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
