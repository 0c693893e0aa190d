"""The caller's own account: profile, email, password and sessions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from seatlock.auth.responses import REFRESH_COOKIE
from tests.clients import PASSWORD, Client, ClientWith, assert_problem

EMAIL = "ada@example.test"
NEW_PASSWORD = "a brand new passphrase 42"
SAME_SITE = {"X-Requested-With": "fetch"}


@pytest.fixture
async def client(client_with: ClientWith) -> AsyncIterator[Client]:
    # Workers trust an account's stamp for no time at all: changes show at once here (the
    # bound itself is tested across worker processes in test_immediate_changes).
    async with client_with(account_cache_seconds=0) as client:
        yield client


class SignIn:
    """One signed-in session: its access token and refresh cookie."""

    def __init__(self, response: Any) -> None:
        assert response.status_code in (200, 201), response.text
        self.token = response.json()["access_token"]
        self.cookie = response.cookies[REFRESH_COOKIE]

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def _register(client: Client, email: str = EMAIL, agent: str = "phone") -> SignIn:
    body = {"email": email, "password": PASSWORD, "full_name": "Ada Lovelace"}
    return SignIn(await client.post("/api/auth/register", json=body, headers={"User-Agent": agent}))


async def _login(
    client: Client, email: str = EMAIL, password: str = PASSWORD, agent: str = "laptop"
) -> Any:
    body = {"email": email, "password": password}
    return await client.post("/api/auth/login", json=body, headers={"User-Agent": agent})


async def _refresh(client: Client, cookie: str) -> Any:
    headers = {**SAME_SITE, "Cookie": f"{REFRESH_COOKIE}={cookie}"}
    return await client.post("/api/auth/refresh", headers=headers)


async def _me(client: Client, who: SignIn) -> Any:
    return await client.get("/api/auth/me", headers=who.bearer)


# Profile


async def test_name_change_answers_the_account(client: Client) -> None:
    ada = await _register(client)
    response = await client.patch(
        "/api/auth/me", json={"full_name": " Ada King "}, headers=ada.bearer
    )
    assert response.status_code == 200, response.text
    assert response.json()["full_name"] == "Ada King"
    assert response.json()["status"] == "active"
    assert (await _me(client, ada)).json()["full_name"] == "Ada King"


async def test_email_change_needs_the_current_password(client: Client) -> None:
    ada = await _register(client)
    change = {"email": "Countess@Example.test"}
    missing = await client.patch("/api/auth/me", json=change, headers=ada.bearer)
    assert assert_problem(missing, 422, "invalid-input")["field"] == "current_password"
    wrong = await client.patch(
        "/api/auth/me", json={**change, "current_password": "not it at all"}, headers=ada.bearer
    )
    assert_problem(wrong, 403, "forbidden")
    assert (await _me(client, ada)).json()["email"] == EMAIL
    right = await client.patch(
        "/api/auth/me", json={**change, "current_password": PASSWORD}, headers=ada.bearer
    )
    assert right.status_code == 200, right.text
    assert right.json()["email"] == "countess@example.test"
    assert (await _login(client, "countess@example.test")).status_code == 200
    assert (await _login(client, EMAIL)).status_code == 401


async def test_same_email_needs_no_password(client: Client) -> None:
    ada = await _register(client)
    response = await client.patch(
        "/api/auth/me", json={"email": EMAIL.upper(), "full_name": "A"}, headers=ada.bearer
    )
    assert response.status_code == 200, response.text


async def test_email_of_another_account_is_a_conflict(client: Client) -> None:
    ada = await _register(client)
    await _register(client, "grace@example.test")
    response = await client.patch(
        "/api/auth/me",
        json={"email": "GRACE@example.test", "current_password": PASSWORD, "full_name": "X"},
        headers=ada.bearer,
    )
    assert_problem(response, 409, "conflict")
    me = (await _me(client, ada)).json()
    assert (me["email"], me["full_name"]) == (EMAIL, "Ada Lovelace")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 422),
        ({"full_name": ""}, 400),
        ({"full_name": "x" * 121}, 400),
        ({"email": "not-an-email", "current_password": PASSWORD}, 400),
        ({"full_name": "A", "role": "ADMIN"}, 400),
        ({"full_name": 7}, 400),
    ],
)
async def test_bad_profile_change_is_refused(
    client: Client, body: dict[str, Any], status: int
) -> None:
    ada = await _register(client)
    assert_problem(await client.patch("/api/auth/me", json=body, headers=ada.bearer), status)
    me = (await _me(client, ada)).json()
    assert (me["email"], me["full_name"], me["role"]) == (EMAIL, "Ada Lovelace", "USER")


# Password


async def _change_password(client: Client, who: SignIn, current: str = PASSWORD) -> Any:
    body = {"current_password": current, "new_password": NEW_PASSWORD}
    return await client.post("/api/auth/password", json=body, headers=who.bearer)


async def test_password_change_signs_out_every_other_session(client: Client) -> None:
    phone = await _register(client)
    laptop = SignIn(await _login(client))
    response = await _change_password(client, phone)
    assert response.status_code == 200, response.text
    assert "no-store" in response.headers["cache-control"]
    renewed = SignIn(response)
    # The caller stays signed in, with a new access token and a rotated cookie.
    assert (await _me(client, renewed)).status_code == 200
    assert renewed.cookie != phone.cookie
    # Every access token issued before the change is void, and the other session is over.
    assert_problem(await _me(client, laptop), 401)
    assert_problem(await _me(client, phone), 401)
    assert_problem(await _refresh(client, laptop.cookie), 401)
    assert (await _refresh(client, renewed.cookie)).status_code == 200
    assert (await _login(client, password=NEW_PASSWORD)).status_code == 200
    assert (await _login(client)).status_code == 401


async def test_rotated_away_cookie_counts_as_reuse(client: Client) -> None:
    phone = await _register(client)
    renewed = SignIn(await _change_password(client, phone))
    assert_problem(await _refresh(client, phone.cookie), 401)
    # Reuse ends the whole session, the renewed cookie included.
    assert_problem(await _refresh(client, renewed.cookie), 401)


async def test_wrong_current_password_is_refused_and_throttled(
    client_with: ClientWith,
) -> None:
    async with client_with(
        account_cache_seconds=0, login_attempts_per_account_address=2, login_delay_seconds=60
    ) as client:
        ada = await _register(client)
        for _ in range(2):
            assert_problem(await _change_password(client, ada, "wrong password!"), 403)
        # The account is throttled like after failed sign-ins: even the right one waits.
        throttled = await _change_password(client, ada)
        assert_problem(throttled, 429)
        assert_problem(await _login(client), 429)
        assert (await _me(client, ada)).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"current_password": PASSWORD, "new_password": "too short"},
        {"current_password": PASSWORD},
        {"current_password": "", "new_password": NEW_PASSWORD},
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "also": 1},
    ],
)
async def test_bad_password_change_is_refused(client: Client, body: dict[str, Any]) -> None:
    ada = await _register(client)
    assert_problem(await client.post("/api/auth/password", json=body, headers=ada.bearer), 400)
    assert (await _login(client)).status_code == 200


# Sessions


async def _sessions(client: Client, who: SignIn) -> list[dict[str, Any]]:
    response = await client.get("/api/auth/sessions", headers=who.bearer)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["items"]
    return found


async def test_sessions_list_shows_each_sign_in(client: Client) -> None:
    phone = await _register(client, agent="phone")
    laptop = SignIn(await _login(client, agent="laptop"))
    await _register(client, "grace@example.test")
    listed = await _sessions(client, laptop)
    assert [(s["user_agent"], s["current"]) for s in listed] == [
        ("laptop", True),
        ("phone", False),
    ]
    assert all(s["client_address"] for s in listed)
    assert all(s["created_at"] <= s["last_used_at"] for s in listed)
    # A refresh is a use of the session: it moves to the top, keeping its id.
    phone_id = listed[1]["id"]
    refreshed = await _refresh(client, phone.cookie)
    assert refreshed.status_code == 200
    first = (await _sessions(client, laptop))[0]
    assert first["id"] == phone_id
    assert first["last_used_at"] > first["created_at"]


async def test_signing_one_session_out(client: Client) -> None:
    phone = await _register(client)
    laptop = SignIn(await _login(client))
    phone_id = next(s["id"] for s in await _sessions(client, laptop) if not s["current"])
    response = await client.delete(f"/api/auth/sessions/{phone_id}", headers=laptop.bearer)
    assert response.status_code == 204
    assert_problem(await _refresh(client, phone.cookie), 401)
    assert [s["current"] for s in await _sessions(client, laptop)] == [True]
    again = await client.delete(f"/api/auth/sessions/{phone_id}", headers=laptop.bearer)
    assert_problem(again, 404)


async def test_another_accounts_session_is_not_found(client: Client) -> None:
    ada = await _register(client)
    grace = await _register(client, "grace@example.test")
    graces = (await _sessions(client, grace))[0]["id"]
    response = await client.delete(f"/api/auth/sessions/{graces}", headers=ada.bearer)
    assert_problem(response, 404)
    assert (await _refresh(client, grace.cookie)).status_code == 200


async def test_signing_out_every_other_session(client: Client) -> None:
    phone = await _register(client)
    laptop = SignIn(await _login(client))
    response = await client.delete("/api/auth/sessions", headers=laptop.bearer)
    assert response.status_code == 200, response.text
    renewed = SignIn(response)
    assert_problem(await _me(client, phone), 401)
    assert_problem(await _refresh(client, phone.cookie), 401)
    assert (await _me(client, renewed)).status_code == 200
    assert [s["current"] for s in await _sessions(client, renewed)] == [True]
    assert (await _refresh(client, renewed.cookie)).status_code == 200


async def test_bad_session_id_is_refused(client: Client) -> None:
    ada = await _register(client)
    assert_problem(await client.delete("/api/auth/sessions/not-a-uuid", headers=ada.bearer), 404)
