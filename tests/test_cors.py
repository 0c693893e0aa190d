"""Front-ends on the allowed origins may call the API from a browser; others may not."""

from __future__ import annotations

import msgspec
from litestar.testing import AsyncTestClient

from seatlock.app import create_app
from seatlock.settings import Settings

SHOP = "https://tickets.example.test"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, idempotency-key",
}


async def test_an_allowed_origin_passes_the_preflight_with_credentials(settings: Settings) -> None:
    app = create_app(msgspec.structs.replace(settings, allowed_origins=SHOP))
    async with AsyncTestClient(app=app) as client:
        allowed = await client.options("/api/bookings", headers={"Origin": SHOP, **PREFLIGHT})
        foreign = await client.options(
            "/api/bookings", headers={"Origin": "https://evil.test", **PREFLIGHT}
        )
        read = await client.get("/health/live", headers={"Origin": SHOP})

    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == SHOP
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert "idempotency-key" in allowed.headers["access-control-allow-headers"].lower()
    assert foreign.headers.get("access-control-allow-origin") != "https://evil.test"
    assert read.headers["access-control-allow-origin"] == SHOP


async def test_without_allowed_origins_no_cross_origin_access(settings: Settings) -> None:
    async with AsyncTestClient(app=create_app(settings)) as client:
        response = await client.get("/health/live", headers={"Origin": SHOP})

    assert "access-control-allow-origin" not in response.headers
