"""Schemathesis over the OpenAPI document, in-process (no network): generated requests as
anonymous, USER, ORGANIZER and ADMIN, with every check. No server error, no answer that
breaks its documented schema, no status the document does not name."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any, cast

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.python import asgi
from sqlalchemy import text

from seatlock import db
from seatlock.app import create_app
from seatlock.models import Base, Role
from seatlock.openapi import finish
from seatlock.settings import Settings
from seatlock.testing import fuzzing
from tests.clients import PASSWORD, TEST_SECRET

BASE_URL = f"http://{asgi.HOST}"
TURNS = itertools.count()
ROLES = ("anonymous", Role.USER.value, Role.ORGANIZER.value, Role.ADMIN.value)
CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": 15,
        "checks": {
            "positive_data_acceptance": {"expected-statuses": fuzzing.ACCEPTED},
            "negative_data_rejection": {"expected-statuses": fuzzing.REFUSED},
        },
    }
)


async def _reset(database_url: str, promotions: dict[str, str]) -> None:
    engine = db.create_engine(database_url, pool_size=1)
    async with engine.begin() as conn:
        if not promotions:
            tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
            await conn.execute(text(f"TRUNCATE {tables} CASCADE"))
        for email, role in promotions.items():
            await conn.execute(
                text("UPDATE users SET role = :role WHERE email = :email"),
                {"role": role, "email": email},
            )
    await engine.dispose()


@pytest.fixture(autouse=True)
def clean_state() -> None:
    """Replaces the suite's per-test cleanup: the fuzzed operations share one database,
    cleaned once, with one account per role (see `fuzzed`)."""


# The app under test, made at import so that schemathesis knows it when it collects the
# operations; it is started (by schemathesis, on first use) only once `callers` has given
# it the suite's settings, which its lifespan reads.
APP = create_app(Settings(env="test", jwt_secret=TEST_SECRET))
schema = schemathesis.openapi.from_dict(finish(APP, APP.openapi_schema.to_schema()), config=CONFIG)
schema.app = APP


@pytest.fixture(scope="module")
def callers(settings: Settings) -> Iterator[dict[str, dict[str, str]]]:
    """The headers of each kind of caller: anonymous, and one account per role."""
    asyncio.run(_reset(settings.database_url, {}))
    APP.state.settings = settings
    emails = {role: f"fuzz-{role.lower()}@example.test" for role in ROLES[1:]}
    headers: dict[str, dict[str, str]] = {"anonymous": {}}
    with asgi.get_client(cast(asgi.ASGIApp, APP)) as client:
        for email in emails.values():
            body = {"email": email, "password": PASSWORD, "full_name": "Fuzz"}
            assert client.post(f"{BASE_URL}/api/auth/register", json=body).ok
        asyncio.run(_reset(settings.database_url, {e: r for r, e in emails.items()}))
        for role, email in emails.items():
            answer = client.post(
                f"{BASE_URL}/api/auth/login", json={"email": email, "password": PASSWORD}
            )
            assert answer.ok, answer.text
            headers[role] = {"Authorization": f"Bearer {answer.json()['access_token']}"}
    yield headers
    asgi.shutdown_lifespans()


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_keeps_its_contract(
    case: schemathesis.Case[Any], callers: dict[str, dict[str, str]]
) -> None:
    # The callers take turns, so that each kind sees about a quarter of the examples.
    role = ROLES[next(TURNS) % len(ROLES)]
    case.call_and_validate(headers={**dict(case.headers or {}), **callers[role]})
