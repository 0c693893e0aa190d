"""The NPR-only providers behind the payment service: a booking in another currency is
refused before anything is written or sent, which is why their adapters do not check it."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from seatlock.models import PaymentMethod
from seatlock.payments.providers.registry import build_providers
from seatlock.settings import Settings
from tests.buying import booked
from tests.clients import Client, UserFactory
from tests.factories import create_event, scalar
from tests.payments.providers.fake_providers import (
    ESEWA_KEY,
    KHALTI_KEY,
    FakeEsewa,
    FakeKhalti,
    client_for,
)


@pytest.mark.parametrize(
    ("method", "fake_of"),
    [(PaymentMethod.KHALTI, FakeKhalti), (PaymentMethod.ESEWA, FakeEsewa)],
)
async def test_another_currency_is_refused_before_the_provider_is_called(
    client: Client,
    make_user: UserFactory,
    engine: AsyncEngine,
    method: PaymentMethod,
    fake_of: type[FakeKhalti | FakeEsewa],
) -> None:
    fake = fake_of()
    keys = Settings(env="test", khalti_secret_key=KHALTI_KEY, esewa_secret_key=ESEWA_KEY)
    event = await create_event(engine)  # priced in USD
    buyer = await make_user()
    booking = await booked(client, buyer, event.id, event.seat_ids[:1])
    async with client_for(fake.app()) as http:
        client.app.state.providers[method] = build_providers(keys, http)[method]
        response = await client.post(
            "/api/payments/initiate",
            json={"booking_id": booking["id"], "method": method.value},
            headers={**buyer, "Idempotency-Key": str(uuid.uuid4())},
        )

    assert response.status_code == 422
    assert "NPR" in response.json()["detail"]
    assert fake.seen == []
    assert await scalar(engine, "SELECT count(*) FROM payments") == 0
