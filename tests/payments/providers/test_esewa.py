"""The eSewa adapter against a local fake of eSewa's ePay v2 form and status check."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from seatlock.payments.providers.base import Initiated, InvalidCallback, ProviderUnavailable
from seatlock.payments.providers.esewa import Esewa, to_paisa
from seatlock.settings import Settings
from tests.payments.providers.fake_providers import (
    ESEWA_KEY,
    ESEWA_PRODUCT,
    FakeEsewa,
    client_for,
    esewa_answer,
    make_checkout,
)

FORM_HOST = "http://rc-epay.esewa.test"
STATUS_HOST = "http://rc.esewa.test"


def esewa_settings(key: str = ESEWA_KEY) -> Settings:
    return Settings(
        env="test",
        esewa_secret_key=key,
        esewa_product_code=ESEWA_PRODUCT,
        esewa_base_url=FORM_HOST,
        esewa_status_base_url=STATUS_HOST,
    )


@pytest.fixture
def fake() -> FakeEsewa:
    return FakeEsewa()


@pytest.fixture
async def browser(fake: FakeEsewa) -> AsyncIterator[httpx.AsyncClient]:
    """The buyer's browser, which posts the form to eSewa."""
    async with client_for(fake.app()) as client:
        yield client


@pytest.fixture
async def esewa(fake: FakeEsewa) -> AsyncIterator[Esewa]:
    async with client_for(fake.app()) as http:
        yield Esewa(esewa_settings(), http)


async def submit(browser: httpx.AsyncClient, initiated: Initiated) -> str:
    """Posts the form as the buyer's browser would; the redirect's `data`, or ""."""
    assert initiated.checkout_url is not None
    response = await browser.post(initiated.checkout_url, data=initiated.fields)
    assert response.status_code == 302, response.text
    query = parse_qs(urlsplit(response.headers["location"]).query)
    return query["data"][0] if "data" in query else ""


def reencode(data: str, **changes: object) -> str:
    fields = json.loads(base64.b64decode(data))
    return base64.b64encode(json.dumps(fields | changes).encode()).decode()


async def test_initiate_signs_the_form_in_rupees(esewa: Esewa) -> None:
    checkout = make_checkout(amount_minor=150_050)

    initiated = await esewa.initiate(checkout)

    reference = f"{checkout.payment_id}-150050"
    message = f"total_amount=1500.50,transaction_uuid={reference},product_code={ESEWA_PRODUCT}"
    signature = base64.b64encode(
        hmac.new(ESEWA_KEY.encode(), message.encode(), hashlib.sha256).digest()
    ).decode()
    assert initiated.provider == "esewa"
    assert initiated.provider_reference == reference
    assert initiated.checkout_url == f"{FORM_HOST}/api/epay/main/v2/form"
    assert initiated.fields == {
        "amount": "1500.50",
        "tax_amount": "0",
        "product_service_charge": "0",
        "product_delivery_charge": "0",
        "total_amount": "1500.50",
        "transaction_uuid": reference,
        "product_code": ESEWA_PRODUCT,
        "success_url": checkout.return_url,
        "failure_url": checkout.return_url,
        "signed_field_names": "total_amount,transaction_uuid,product_code",
        "signature": signature,
    }


async def test_a_paid_form_verifies_with_its_answer_and_the_status_check(
    esewa: Esewa, fake: FakeEsewa, browser: httpx.AsyncClient
) -> None:
    initiated = await esewa.initiate(make_checkout(amount_minor=150_000))
    data = await submit(browser, initiated)

    outcome = await esewa.verify(initiated.provider_reference, {"data": data})

    assert (outcome.provider_reference, outcome.status) == (
        initiated.provider_reference,
        "succeeded",
    )
    assert (outcome.amount_minor, outcome.currency, outcome.provider_event_id) == (
        150_000,
        "NPR",
        None,
    )
    status_check = fake.seen[-1]
    assert status_check.path == "/api/epay/transaction/status/"
    assert status_check.method == "GET"


async def test_verify_without_the_answer_asks_the_status_check(
    esewa: Esewa, browser: httpx.AsyncClient
) -> None:
    initiated = await esewa.initiate(make_checkout())
    assert (await esewa.verify(initiated.provider_reference, {})).status == "pending"

    await submit(browser, initiated)

    assert (await esewa.verify(initiated.provider_reference, {})).status == "succeeded"


async def test_a_cancelled_payment_fails(
    esewa: Esewa, fake: FakeEsewa, browser: httpx.AsyncClient
) -> None:
    fake.buyer_pays = False
    initiated = await esewa.initiate(make_checkout())

    assert await submit(browser, initiated) == ""
    assert (await esewa.verify(initiated.provider_reference, {})).status == "failed"


@pytest.mark.parametrize(
    ("esewa_status", "status"),
    [("PENDING", "pending"), ("AMBIGUOUS", "pending"), ("FULL_REFUND", "failed")],
)
async def test_verify_maps_the_status_check(
    esewa: Esewa, fake: FakeEsewa, browser: httpx.AsyncClient, esewa_status: str, status: str
) -> None:
    initiated = await esewa.initiate(make_checkout())
    await submit(browser, initiated)
    fake.transactions[initiated.provider_reference]["status"] = esewa_status

    assert (await esewa.verify(initiated.provider_reference, {})).status == status


async def test_another_amount_is_reported_as_esewa_states_it(
    esewa: Esewa, fake: FakeEsewa, browser: httpx.AsyncClient
) -> None:
    initiated = await esewa.initiate(make_checkout(amount_minor=150_000))
    await submit(browser, initiated)
    fake.transactions[initiated.provider_reference]["total_amount"] = "1,000.0"

    outcome = await esewa.verify(initiated.provider_reference, {})

    assert (outcome.status, outcome.amount_minor) == ("succeeded", 100_000)


@pytest.mark.parametrize(
    "changes",
    [{"total_amount": 1.0}, {"status": "COMPLETE", "transaction_code": "FORGED"}],
)
async def test_a_tampered_answer_is_refused(
    esewa: Esewa, fake: FakeEsewa, browser: httpx.AsyncClient, changes: dict[str, object]
) -> None:
    initiated = await esewa.initiate(make_checkout())
    data = await submit(browser, initiated)
    status_checks = len(fake.seen)

    with pytest.raises(InvalidCallback, match="signature"):
        await esewa.verify(initiated.provider_reference, {"data": reencode(data, **changes)})
    assert len(fake.seen) == status_checks


async def test_an_answer_signed_with_another_key_is_refused(esewa: Esewa) -> None:
    initiated = await esewa.initiate(make_checkout(amount_minor=150_000))
    forged = esewa_answer(
        "not-the-key",
        transaction_code="000AWEO",
        status="COMPLETE",
        total_amount=1500.0,
        transaction_uuid=initiated.provider_reference,
        product_code=ESEWA_PRODUCT,
    )

    with pytest.raises(InvalidCallback, match="signature"):
        await esewa.verify(initiated.provider_reference, {"data": forged})


async def test_an_answer_for_another_transaction_is_refused(
    esewa: Esewa, browser: httpx.AsyncClient
) -> None:
    paid = await esewa.initiate(make_checkout())
    data = await submit(browser, paid)
    other = await esewa.initiate(make_checkout())

    with pytest.raises(InvalidCallback, match="another transaction"):
        await esewa.verify(other.provider_reference, {"data": data})


async def test_an_answer_signing_too_little_is_refused(esewa: Esewa) -> None:
    initiated = await esewa.initiate(make_checkout())
    # Correctly signed, but the status is not among the signed fields.
    unsigned_status = esewa_answer(
        ESEWA_KEY, transaction_uuid=initiated.provider_reference, product_code=ESEWA_PRODUCT
    )

    with pytest.raises(InvalidCallback, match="does not sign"):
        await esewa.verify(initiated.provider_reference, {"data": unsigned_status})


@pytest.mark.parametrize("data", ["%%%not base64", base64.b64encode(b"[1, 2]").decode(), ""])
async def test_a_malformed_answer_is_refused(esewa: Esewa, data: str) -> None:
    initiated = await esewa.initiate(make_checkout())

    with pytest.raises(InvalidCallback):
        await esewa.verify(initiated.provider_reference, {"data": data})


async def test_a_reference_of_another_kind_is_refused(esewa: Esewa) -> None:
    with pytest.raises(InvalidCallback):
        await esewa.verify("pi_123", {})


async def test_esewa_failing_is_unavailable(esewa: Esewa, fake: FakeEsewa) -> None:
    initiated = await esewa.initiate(make_checkout())
    fake.failing = True

    with pytest.raises(ProviderUnavailable, match="HTTP 500"):
        await esewa.verify(initiated.provider_reference, {})


async def test_refunds_are_left_to_the_merchant_portal(esewa: Esewa) -> None:
    initiated = await esewa.initiate(make_checkout())

    with pytest.raises(ProviderUnavailable, match="merchant portal"):
        await esewa.refund(initiated.provider_reference, 150_000, "NPR")


async def test_esewa_sends_no_webhooks(esewa: Esewa) -> None:
    with pytest.raises(InvalidCallback, match="no webhooks"):
        await esewa.parse_webhook(b"{}", {})


@pytest.mark.parametrize(
    ("written", "paisa"),
    [(100, 10_000), (100.0, 10_000), ("1,000.0", 100_000), ("1500.50", 150_050)],
)
def test_rupees_as_esewa_writes_them(written: float | str, paisa: int) -> None:
    assert to_paisa(written) == paisa


@pytest.mark.parametrize("written", ["ten", "1.005", "NaN", "Infinity"])
def test_odd_amounts_are_not_paisa(written: str) -> None:
    with pytest.raises(ValueError, match="not"):
        to_paisa(written)
