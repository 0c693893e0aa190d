"""The Khalti adapter against a local fake of Khalti's ePayment API."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from seatlock.errors import Conflict, InvalidInput
from seatlock.payments.providers.base import InvalidCallback, ProviderUnavailable
from seatlock.payments.providers.khalti import Khalti
from seatlock.settings import Settings
from tests.payments.providers.fake_providers import (
    KHALTI_KEY,
    FakeKhalti,
    client_for,
    make_checkout,
)

BASE_URL = "http://khalti.test/api/v2"


def khalti_settings(key: str = KHALTI_KEY, base_url: str = BASE_URL) -> Settings:
    return Settings(
        env="test",
        khalti_secret_key=key,
        khalti_base_url=base_url,
        public_base_url="https://seatlock.test",
    )


@pytest.fixture
def fake() -> FakeKhalti:
    return FakeKhalti()


@pytest.fixture
async def khalti(fake: FakeKhalti) -> AsyncIterator[Khalti]:
    async with client_for(fake.app()) as http:
        yield Khalti(khalti_settings(), http)


async def test_initiate_sends_paisa_with_the_secret_key(khalti: Khalti, fake: FakeKhalti) -> None:
    checkout = make_checkout(amount_minor=150_000)

    initiated = await khalti.initiate(checkout)

    assert initiated.provider == "khalti"
    assert initiated.provider_reference in fake.payments
    assert initiated.checkout_url == (
        f"https://test-pay.khalti.com/?pidx={initiated.provider_reference}"
    )
    sent = fake.seen[-1]
    assert sent.path == "/api/v2/epayment/initiate/"
    assert sent.headers["authorization"] == f"Key {KHALTI_KEY}"
    assert sent.json() == {
        "return_url": checkout.return_url,
        "website_url": "https://seatlock.test",
        "amount": 150_000,
        "purchase_order_id": str(checkout.payment_id),
        "purchase_order_name": checkout.description,
        "customer_info": {"email": checkout.customer_email},
    }


async def test_an_amount_khalti_refuses_is_the_callers_error(khalti: Khalti) -> None:
    with pytest.raises(InvalidInput, match="HTTP 400"):
        await khalti.initiate(make_checkout(amount_minor=500))


async def test_verify_asks_the_lookup_api(khalti: Khalti, fake: FakeKhalti) -> None:
    pidx = (await khalti.initiate(make_checkout(amount_minor=150_000))).provider_reference
    fake.pay(pidx)

    outcome = await khalti.verify(pidx, {"pidx": pidx, "status": "Completed"})

    assert (outcome.provider_reference, outcome.status) == (pidx, "succeeded")
    assert (outcome.amount_minor, outcome.currency, outcome.provider_event_id) == (
        150_000,
        "NPR",
        None,
    )
    assert fake.seen[-1].path == "/api/v2/epayment/lookup/"
    assert fake.seen[-1].json() == {"pidx": pidx}


@pytest.mark.parametrize(
    ("khalti_status", "status"),
    [
        ("Initiated", "pending"),
        ("Pending", "pending"),
        ("User canceled", "failed"),
        ("Expired", "failed"),
        ("Refunded", "failed"),
        ("Some status Khalti adds one day", "pending"),
    ],
)
async def test_verify_maps_the_lookup_status(
    khalti: Khalti, fake: FakeKhalti, khalti_status: str, status: str
) -> None:
    pidx = (await khalti.initiate(make_checkout())).provider_reference
    fake.payments[pidx]["status"] = khalti_status

    assert (await khalti.verify(pidx, {})).status == status


async def test_the_redirect_cannot_claim_success_on_its_own(
    khalti: Khalti, fake: FakeKhalti
) -> None:
    pidx = (await khalti.initiate(make_checkout())).provider_reference

    outcome = await khalti.verify(pidx, {"pidx": pidx, "status": "Completed"})

    assert outcome.status == "pending"


async def test_another_amount_is_reported_as_khalti_states_it(
    khalti: Khalti, fake: FakeKhalti
) -> None:
    pidx = (await khalti.initiate(make_checkout(amount_minor=150_000))).provider_reference
    fake.pay(pidx, amount=1_500)

    outcome = await khalti.verify(pidx, {})

    assert (outcome.status, outcome.amount_minor) == ("succeeded", 1_500)


async def test_a_callback_for_another_payment_is_refused(khalti: Khalti, fake: FakeKhalti) -> None:
    pidx = (await khalti.initiate(make_checkout())).provider_reference
    fake.pay(pidx)

    with pytest.raises(InvalidCallback):
        await khalti.verify(pidx, {"pidx": "someone-elses-pidx"})


async def test_an_unknown_pidx_is_refused(khalti: Khalti) -> None:
    with pytest.raises(InvalidCallback):
        await khalti.verify("no-such-pidx", {})


async def test_khalti_failing_is_unavailable(khalti: Khalti, fake: FakeKhalti) -> None:
    pidx = (await khalti.initiate(make_checkout())).provider_reference
    fake.failing = True

    with pytest.raises(ProviderUnavailable, match="HTTP 500"):
        await khalti.initiate(make_checkout())
    with pytest.raises(ProviderUnavailable):
        await khalti.verify(pidx, {})


async def test_a_refused_key_is_unavailable_not_the_callers_error(fake: FakeKhalti) -> None:
    async with client_for(fake.app()) as http:
        khalti = Khalti(khalti_settings(key="wrong"), http)
        with pytest.raises(ProviderUnavailable, match="HTTP 401"):
            await khalti.initiate(make_checkout())


async def test_khalti_unreachable_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with httpx.AsyncClient() as http:
        khalti = Khalti(khalti_settings(base_url=f"http://127.0.0.1:{port}/api/v2"), http)
        with pytest.raises(ProviderUnavailable, match="could not be reached"):
            await khalti.verify("any-pidx", {})


async def test_refund_uses_the_transaction_id_once(khalti: Khalti, fake: FakeKhalti) -> None:
    pidx = (await khalti.initiate(make_checkout(amount_minor=150_000))).provider_reference
    fake.pay(pidx)
    transaction_id = fake.payments[pidx]["transaction_id"]

    assert await khalti.refund(pidx, 150_000, "NPR") == transaction_id
    assert fake.seen[-1].path == f"/api/merchant-transaction/{transaction_id}/refund/"
    assert fake.seen[-1].headers["authorization"] == f"Key {KHALTI_KEY}"
    # A retry after a lost answer finds the payment refunded and asks for nothing more.
    assert await khalti.refund(pidx, 150_000, "NPR") == transaction_id
    assert fake.refunds == [(transaction_id, 150_000)]
    assert (await khalti.verify(pidx, {})).status == "failed"


async def test_an_unpaid_payment_cannot_be_refunded(khalti: Khalti, fake: FakeKhalti) -> None:
    pidx = (await khalti.initiate(make_checkout())).provider_reference

    with pytest.raises(Conflict):
        await khalti.refund(pidx, 150_000, "NPR")
    assert fake.refunds == []


async def test_khalti_sends_no_webhooks(khalti: Khalti) -> None:
    with pytest.raises(InvalidCallback, match="no webhooks"):
        await khalti.parse_webhook(b"{}", {})
