"""Access tokens: every way of forging or misusing one is refused with 401."""

from __future__ import annotations

import secrets
import time
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from seatlock.auth import tokens
from seatlock.auth.access import SIGN_IN_REQUIRED
from seatlock.auth.responses import REFRESH_COOKIE
from seatlock.auth.tokens import Principal, issue_access_token
from seatlock.errors import Unauthorized
from seatlock.models import Role
from seatlock.settings import Settings
from tests.clients import PASSWORD, TEST_SECRET, Client, assert_problem

EMAIL = "holder@example.test"


async def _sign_up(client: Client) -> tuple[dict[str, Any], str]:
    """Registers an account: the claims of its access token and its refresh token."""
    response = await client.post(
        "/api/auth/register",
        json={"email": EMAIL, "password": PASSWORD, "full_name": "Token Holder"},
    )
    assert response.status_code == 201, response.text
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    return claims, response.cookies[REFRESH_COOKIE]


def _claims(genuine: dict[str, Any], **changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    claims = {
        **genuine,
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "jti": secrets.token_urlsafe(8),
    }
    for name, value in changes.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def _sign(claims: dict[str, Any], key: str = TEST_SECRET, algorithm: str = "HS256") -> str:
    with warnings.catch_warnings():
        # The service's own key is the point here, even where it is short for SHA-512.
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        return jwt.encode(claims, key, algorithm=algorithm)


async def _me(client: Client, token: str) -> Any:
    return await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})


def _assert_refused(response: Any) -> None:
    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_issued_access_token_carries_every_claim(client: Client, settings: Settings) -> None:
    claims, _ = await _sign_up(client)
    required = {"sub", "role", "email", "iat", "exp", "iss", "aud", "jti", "typ"}
    # The account's token generation and the session (refresh-token family) besides.
    assert set(claims) == required | {"gen", "sid"}
    assert claims["gen"] == 0
    assert claims["role"] == Role.USER.value
    assert claims["email"] == EMAIL
    assert claims["iss"] == settings.jwt_issuer
    assert claims["aud"] == settings.jwt_audience
    assert claims["typ"] == "access"
    assert claims["exp"] - claims["iat"] == settings.access_token_minutes * 60


async def test_header_of_issued_token_names_the_pinned_algorithm(client: Client) -> None:
    response = await client.post(
        "/api/auth/register",
        json={"email": EMAIL, "password": PASSWORD, "full_name": "Token Holder"},
    )
    assert jwt.get_unverified_header(response.json()["access_token"])["alg"] == "HS256"


async def test_token_forged_like_the_service_is_accepted(client: Client) -> None:
    # The control for every refusal below: the forging itself yields a valid token.
    genuine, _ = await _sign_up(client)
    response = await _me(client, _sign(_claims(genuine)))
    assert response.status_code == 200, response.text
    assert response.json()["email"] == EMAIL


async def test_alg_none_token_is_refused(client: Client) -> None:
    genuine, _ = await _sign_up(client)
    token = jwt.encode(_claims(genuine), None, algorithm="none")
    _assert_refused(await _me(client, token))


async def test_alg_none_header_on_a_genuine_signature_is_refused(client: Client) -> None:
    genuine, _ = await _sign_up(client)
    _, payload, signature = _sign(_claims(genuine)).split(".")
    header = jwt.utils.base64url_encode(b'{"alg":"none","typ":"JWT"}').decode()
    _assert_refused(await _me(client, f"{header}.{payload}.{signature}"))


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
async def test_token_signed_with_another_algorithm_is_refused(
    client: Client, algorithm: str
) -> None:
    genuine, _ = await _sign_up(client)
    _assert_refused(await _me(client, _sign(_claims(genuine), algorithm=algorithm)))


async def test_token_with_bad_signature_is_refused(client: Client) -> None:
    genuine, _ = await _sign_up(client)
    forged = _sign(_claims(genuine), key="another-secret-that-is-long-enough-0123456789")
    _assert_refused(await _me(client, forged))


async def test_token_with_tampered_payload_is_refused(client: Client) -> None:
    genuine, _ = await _sign_up(client)
    header, _, signature = _sign(_claims(genuine)).split(".")
    promoted = _sign(_claims(genuine, role=Role.ADMIN.value)).split(".")[1]
    _assert_refused(await _me(client, f"{header}.{promoted}.{signature}"))


async def test_token_with_wrong_issuer_is_refused(client: Client) -> None:
    genuine, _ = await _sign_up(client)
    _assert_refused(await _me(client, _sign(_claims(genuine, iss="someone-else"))))


async def test_token_with_wrong_audience_is_refused(client: Client) -> None:
    genuine, _ = await _sign_up(client)
    _assert_refused(await _me(client, _sign(_claims(genuine, aud="another-api"))))


async def test_token_without_exp_is_refused(client: Client) -> None:
    genuine, _ = await _sign_up(client)
    _assert_refused(await _me(client, _sign(_claims(genuine, exp=None))))


async def test_expired_token_is_refused(client: Client) -> None:
    genuine, _ = await _sign_up(client)
    expired = datetime.now(UTC) - timedelta(minutes=1)
    token = _sign(_claims(genuine, iat=expired - timedelta(minutes=15), exp=expired))
    _assert_refused(await _me(client, token))


@pytest.mark.parametrize("claim", ["sub", "role", "email", "iat", "iss", "aud", "jti", "typ"])
async def test_token_missing_a_required_claim_is_refused(client: Client, claim: str) -> None:
    genuine, _ = await _sign_up(client)
    _assert_refused(await _me(client, _sign(_claims(genuine, **{claim: None}))))


async def test_refresh_token_used_as_access_token_is_refused(client: Client) -> None:
    _, refresh_token = await _sign_up(client)
    _assert_refused(await _me(client, refresh_token))


@pytest.mark.parametrize("typ", ["refresh", "id", "ACCESS"])
async def test_token_of_another_type_is_refused(client: Client, typ: str) -> None:
    genuine, _ = await _sign_up(client)
    _assert_refused(await _me(client, _sign(_claims(genuine, typ=typ))))


@pytest.mark.parametrize(
    ("claim", "value"), [("role", "SUPERUSER"), ("sub", "not-a-uuid"), ("sub", 12345)]
)
async def test_token_with_malformed_claim_is_refused(
    client: Client, claim: str, value: Any
) -> None:
    genuine, _ = await _sign_up(client)
    _assert_refused(await _me(client, _sign(_claims(genuine, **{claim: value}))))


@pytest.mark.parametrize(
    "header", ["Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc", "bearer not.a.jwt"]
)
async def test_malformed_authorization_header_is_refused(client: Client, header: str) -> None:
    _assert_refused(await client.get("/api/auth/me", headers={"Authorization": header}))


async def test_request_without_token_is_asked_to_sign_in(client: Client) -> None:
    response = await client.get("/api/auth/me")
    _assert_refused(response)
    assert response.json()["detail"] == SIGN_IN_REQUIRED


async def test_stale_token_does_not_block_public_routes(client: Client) -> None:
    genuine, refresh_token = await _sign_up(client)
    expired = datetime.now(UTC) - timedelta(minutes=1)
    stale = {"Authorization": f"Bearer {_sign(_claims(genuine, exp=expired))}"}
    refreshed = await client.post(
        "/api/auth/refresh",
        headers={
            **stale,
            "X-Requested-With": "fetch",
            "Cookie": f"{REFRESH_COOKIE}={refresh_token}",
        },
    )
    assert refreshed.status_code == 200, refreshed.text
    login = await client.post(
        "/api/auth/login", json={"email": EMAIL, "password": PASSWORD}, headers=stale
    )
    assert login.status_code == 200, login.text


def test_a_verified_token_is_remembered_only_until_it_expires_and_only_for_its_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(jwt_secret=TEST_SECRET)
    caller = Principal(uuid.uuid4(), Role.USER, "cached@example.test")
    token = issue_access_token(settings, caller)
    assert tokens.read_access_token(settings, token) == caller

    def no_more_verifying(*args: Any, **kwargs: Any) -> Any:
        raise jwt.InvalidTokenError("verified again")

    monkeypatch.setattr(jwt, "decode", no_more_verifying)
    assert tokens.read_access_token(settings, token) == caller
    other_key = Settings(jwt_secret=TEST_SECRET[::-1])
    with pytest.raises(Unauthorized):
        tokens.read_access_token(other_key, token)
    later = time.time() + settings.access_token_minutes * 60 + 1
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(Unauthorized):
        tokens.read_access_token(settings, token)
