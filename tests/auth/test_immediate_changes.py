"""A role change and a disable reach live access tokens on every worker process within
the account cache's lifetime (`account_cache_seconds`), through the real HTTP stack."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx
import jwt
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock.auth.access import ROLE_REFUSED
from seatlock.models import Role
from seatlock.settings import Settings
from seatlock.testing.accounts import mint_accounts
from tests.live_server import live_server

BOUND_SECONDS = Settings().account_cache_seconds
# What the test itself may take beyond the bound: round trips on a busy machine.
SLACK_SECONDS = 1.5
Call = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


def _subject(headers: dict[str, str]) -> str:
    token = headers["Authorization"].removeprefix("Bearer ")
    subject: str = jwt.decode(token, options={"verify_signature": False})["sub"]
    return subject


async def _answers(base_url: str, call: Call) -> set[tuple[int, str]]:
    """Status and detail of ten calls, each on a connection of its own, so that both
    workers answer."""

    async def one() -> tuple[int, str]:
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
            response = await call(http)
        detail = response.json().get("detail", "") if response.status_code >= 400 else ""
        return response.status_code, detail

    return set(await asyncio.gather(*(one() for _ in range(10))))


async def _seconds_until(base_url: str, call: Call, wanted: tuple[int, str]) -> float:
    started = time.monotonic()
    while time.monotonic() - started < BOUND_SECONDS + SLACK_SECONDS:
        if await _answers(base_url, call) == {wanted}:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"not {wanted} on every worker within the bound")


async def _change(base_url: str, admin: dict[str, str], user: dict[str, str], body: object) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        response = await http.patch(f"/api/admin/users/{_subject(user)}", json=body, headers=admin)
    assert response.status_code == 200, response.text


async def test_disable_and_demotion_reach_every_worker_within_the_bound(
    engine: AsyncEngine, settings: Settings
) -> None:
    [admin] = await mint_accounts(engine, settings.jwt_secret, 1, Role.ADMIN)
    [buyer] = await mint_accounts(engine, settings.jwt_secret, 1)
    [organizer] = await mint_accounts(engine, settings.jwt_secret, 1, Role.ORGANIZER)

    async def me(http: httpx.AsyncClient) -> httpx.Response:
        return await http.get("/api/auth/me", headers=buyer)

    async def create_event(http: httpx.AsyncClient) -> httpx.Response:
        return await http.post("/api/events", json={}, headers=organizer)

    with live_server(settings, workers=2) as base_url:
        # Both workers have read (and cached) both accounts as they were.
        assert await _answers(base_url, me) == {(200, "")}
        assert {status for status, _ in await _answers(base_url, create_event)} == {400}

        await _change(base_url, admin, buyer, {"status": "disabled"})
        await _change(base_url, admin, organizer, {"role": "USER"})
        disabled_after = await _seconds_until(base_url, me, (401, "this account is disabled"))
        demoted_after = await _seconds_until(base_url, create_event, (403, ROLE_REFUSED))
        # And it stays so.
        await asyncio.sleep(BOUND_SECONDS)
        assert await _answers(base_url, me) == {(401, "this account is disabled")}
        assert await _answers(base_url, create_event) == {(403, ROLE_REFUSED)}

    assert disabled_after <= BOUND_SECONDS + SLACK_SECONDS
    assert demoted_after <= BOUND_SECONDS + SLACK_SECONDS
