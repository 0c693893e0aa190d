"""Front-ends on the allowed origins may call the API from a browser; others may not."""

from __future__ import annotations

from tests.clients import Client, ClientWith

SHOP = "https://tickets.example.test"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, idempotency-key",
}


async def test_an_allowed_origin_passes_the_preflight_with_credentials(
    client_with: ClientWith,
) -> None:
    async with client_with(allowed_origins=SHOP) as client:
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


async def test_without_allowed_origins_no_cross_origin_access(client: Client) -> None:
    response = await client.get("/health/live", headers={"Origin": SHOP})

    assert "access-control-allow-origin" not in response.headers
