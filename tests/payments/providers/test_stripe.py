"""The card adapter against a local fake of Stripe's PaymentIntents, refunds and webhooks."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import pytest

from seatlock.errors import Conflict, InvalidInput
from seatlock.payments.providers.base import InvalidCallback, ProviderUnavailable
from seatlock.payments.providers.stripe import Stripe
from seatlock.settings import Settings
from tests.payments.providers.fake_providers import (
    STRIPE_KEY,
    STRIPE_WEBHOOK_SECRET,
    FakeStripe,
    client_for,
    make_checkout,
    stripe_signature,
)


def stripe_settings(key: str = STRIPE_KEY, webhook_secret: str = STRIPE_WEBHOOK_SECRET) -> Settings:
    return Settings(
        env="test",
        stripe_secret_key=key,
        stripe_webhook_secret=webhook_secret,
        stripe_base_url="http://stripe.test",
        webhook_tolerance_seconds=300,
    )


@pytest.fixture
def fake() -> FakeStripe:
    return FakeStripe()


@pytest.fixture
async def card(fake: FakeStripe) -> AsyncIterator[Stripe]:
    async with client_for(fake.app()) as http:
        yield Stripe(stripe_settings(), http)


async def new_intent(card: Stripe, amount_minor: int = 2_500) -> str:
    initiated = await card.initiate(make_checkout(amount_minor=amount_minor, currency="USD"))
    return initiated.provider_reference


async def test_initiate_creates_a_payment_intent_form_encoded(
    card: Stripe, fake: FakeStripe
) -> None:
    checkout = make_checkout(amount_minor=2_500, currency="USD")

    initiated = await card.initiate(checkout)

    intent = fake.intents[initiated.provider_reference]
    assert initiated.provider == "stripe"
    assert initiated.checkout_url is None
    assert initiated.fields == {"client_secret": intent["client_secret"]}
    sent = fake.seen[-1]
    assert (sent.method, sent.path) == ("POST", "/v1/payment_intents")
    assert sent.headers["authorization"] == f"Bearer {STRIPE_KEY}"
    assert sent.headers["content-type"] == "application/x-www-form-urlencoded"
    assert sent.headers["idempotency-key"] == f"initiate-{checkout.payment_id}"
    assert sent.form() == {
        "amount": "2500",
        "currency": "usd",
        "description": checkout.description,
        "receipt_email": checkout.customer_email,
        "automatic_payment_methods[enabled]": "true",
        "metadata[payment_id]": str(checkout.payment_id),
        "metadata[booking_id]": str(checkout.booking_id),
    }


async def test_a_retried_initiate_gets_the_same_payment_intent(
    card: Stripe, fake: FakeStripe
) -> None:
    checkout = make_checkout(currency="USD")

    first, second = await card.initiate(checkout), await card.initiate(checkout)

    assert first.provider_reference == second.provider_reference
    assert len(fake.intents) == 1


async def test_an_amount_stripe_refuses_is_the_callers_error(card: Stripe) -> None:
    with pytest.raises(InvalidInput, match="HTTP 400"):
        await new_intent(card, amount_minor=0)


@pytest.mark.parametrize(
    ("stripe_status", "status"),
    [
        ("succeeded", "succeeded"),
        ("canceled", "failed"),
        ("requires_payment_method", "pending"),
        ("requires_action", "pending"),
        ("processing", "pending"),
    ],
)
async def test_verify_retrieves_the_payment_intent(
    card: Stripe, fake: FakeStripe, stripe_status: str, status: str
) -> None:
    intent_id = await new_intent(card, amount_minor=2_500)
    fake.settle(intent_id, stripe_status)

    outcome = await card.verify(intent_id, {})

    assert (outcome.provider_reference, outcome.status) == (intent_id, status)
    assert (outcome.amount_minor, outcome.currency, outcome.provider_event_id) == (
        2_500,
        "USD",
        None,
    )
    assert (fake.seen[-1].method, fake.seen[-1].path) == ("GET", f"/v1/payment_intents/{intent_id}")


async def test_the_amount_received_is_reported_as_stripe_states_it(
    card: Stripe, fake: FakeStripe
) -> None:
    intent_id = await new_intent(card, amount_minor=2_500)
    fake.settle(intent_id, "succeeded", amount_received=2_000)

    outcome = await card.verify(intent_id, {"payment_intent": intent_id})

    assert (outcome.status, outcome.amount_minor) == ("succeeded", 2_000)


async def test_a_redirect_for_another_payment_intent_is_refused(card: Stripe) -> None:
    intent_id = await new_intent(card)

    with pytest.raises(InvalidCallback):
        await card.verify(intent_id, {"payment_intent": "pi_someoneelse"})


async def test_unknown_and_malformed_payment_intents_are_refused(
    card: Stripe, fake: FakeStripe
) -> None:
    with pytest.raises(InvalidCallback, match="HTTP 404"):
        await card.verify("pi_unknown", {})
    requests = len(fake.seen)
    with pytest.raises(InvalidCallback, match="not a Stripe"):
        await card.verify("pi_1/../../v1/refunds", {})
    assert len(fake.seen) == requests


async def test_stripe_failing_is_unavailable(card: Stripe, fake: FakeStripe) -> None:
    intent_id = await new_intent(card)
    fake.failing = True

    with pytest.raises(ProviderUnavailable, match="HTTP 500"):
        await card.verify(intent_id, {})
    with pytest.raises(ProviderUnavailable):
        await new_intent(card)


async def test_a_refused_key_is_unavailable_not_the_callers_error(fake: FakeStripe) -> None:
    async with client_for(fake.app()) as http:
        with pytest.raises(ProviderUnavailable, match="HTTP 401"):
            await new_intent(Stripe(stripe_settings(key="sk_test_wrong"), http))


async def test_a_signed_webhook_gives_the_outcome_and_event_id(
    card: Stripe, fake: FakeStripe
) -> None:
    intent_id = await new_intent(card, amount_minor=2_500)
    fake.settle(intent_id, "succeeded")
    body = fake.event(intent_id, "payment_intent.succeeded")

    outcome = await card.parse_webhook(body, {"Stripe-Signature": stripe_signature(body)})

    assert (outcome.provider_reference, outcome.status, outcome.amount_minor) == (
        intent_id,
        "succeeded",
        2_500,
    )
    assert outcome.currency == "USD"
    assert outcome.provider_event_id == json.loads(body)["id"]


async def test_a_failed_attempt_fails_the_payment(card: Stripe, fake: FakeStripe) -> None:
    intent_id = await new_intent(card)
    body = fake.event(intent_id, "payment_intent.payment_failed")

    outcome = await card.parse_webhook(body, {"stripe-signature": stripe_signature(body)})

    assert outcome.status == "failed"


async def test_any_of_several_signatures_may_match(card: Stripe, fake: FakeStripe) -> None:
    # During a secret rotation Stripe signs with the old and the new secret.
    intent_id = await new_intent(card)
    body = fake.event(intent_id, "payment_intent.processing")
    header = (
        stripe_signature(body, secret="whsec_old")
        + ",v1="
        + (stripe_signature(body).split("v1=")[1])
    )

    assert (await card.parse_webhook(body, {"Stripe-Signature": header})).status == "pending"


async def test_a_webhook_signed_with_another_secret_is_refused(
    card: Stripe, fake: FakeStripe
) -> None:
    intent_id = await new_intent(card)
    body = fake.event(intent_id, "payment_intent.succeeded")

    with pytest.raises(InvalidCallback, match="signature"):
        await card.parse_webhook(body, {"Stripe-Signature": stripe_signature(body, "whsec_x")})


async def test_a_tampered_webhook_is_refused(card: Stripe, fake: FakeStripe) -> None:
    intent_id = await new_intent(card, amount_minor=2_500)
    body = fake.event(intent_id, "payment_intent.payment_failed")
    header = stripe_signature(body)
    tampered = body.replace(b"payment_intent.payment_failed", b"payment_intent.succeeded")

    with pytest.raises(InvalidCallback, match="signature"):
        await card.parse_webhook(tampered, {"Stripe-Signature": header})


@pytest.mark.parametrize("age", [301, -301])
async def test_a_webhook_outside_the_tolerance_is_refused(
    card: Stripe, fake: FakeStripe, age: int
) -> None:
    intent_id = await new_intent(card)
    body = fake.event(intent_id, "payment_intent.succeeded")
    header = stripe_signature(body, at=int(time.time()) - age)

    with pytest.raises(InvalidCallback, match="tolerance"):
        await card.parse_webhook(body, {"Stripe-Signature": header})


@pytest.mark.parametrize(
    "headers",
    [{}, {"Stripe-Signature": "v1=abc"}, {"Stripe-Signature": "t=now,v1=abc"}],
)
async def test_a_missing_or_malformed_signature_header_is_refused(
    card: Stripe, headers: dict[str, str]
) -> None:
    with pytest.raises(InvalidCallback, match="Stripe-Signature"):
        await card.parse_webhook(b"{}", headers)


async def test_events_other_than_payment_intent_ones_are_refused(card: Stripe) -> None:
    body = json.dumps(
        {"id": "evt_1", "type": "customer.created", "data": {"object": {"id": "cus_1"}}}
    ).encode()

    with pytest.raises(InvalidCallback):
        await card.parse_webhook(body, {"Stripe-Signature": stripe_signature(body)})


async def test_without_a_webhook_secret_no_webhook_is_trusted(fake: FakeStripe) -> None:
    async with client_for(fake.app()) as http:
        card = Stripe(stripe_settings(webhook_secret=""), http)
        intent_id = await new_intent(card)
        body = fake.event(intent_id, "payment_intent.succeeded")
        header = stripe_signature(body, secret="")

        with pytest.raises(InvalidCallback, match="no Stripe webhook secret"):
            await card.parse_webhook(body, {"Stripe-Signature": header})


async def test_refund_is_made_once_however_often_it_is_asked(
    card: Stripe, fake: FakeStripe
) -> None:
    intent_id = await new_intent(card, amount_minor=2_500)
    fake.settle(intent_id, "succeeded")

    first = await card.refund(intent_id, 2_500, "USD")
    again = await card.refund(intent_id, 2_500, "USD")

    assert first == again
    assert first.startswith("re_")
    assert list(fake.refunds) == [first]
    assert fake.refunds[first]["amount"] == 2_500
    assert fake.seen[-1].form() == {"payment_intent": intent_id, "amount": "2500"}


async def test_an_unpaid_payment_intent_cannot_be_refunded(card: Stripe, fake: FakeStripe) -> None:
    intent_id = await new_intent(card)

    with pytest.raises(Conflict):
        await card.refund(intent_id, 2_500, "USD")
    assert fake.refunds == {}
