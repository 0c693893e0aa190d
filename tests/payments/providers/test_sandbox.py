"""The sandbox provider through its checkout routes, the provider registry, and the
settings that keep the sandbox out of production."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.testing import AsyncTestClient

from seatlock.auth.access import authorize
from seatlock.models import PaymentMethod
from seatlock.payments.providers import sandbox
from seatlock.payments.providers.base import Initiated, InvalidCallback
from seatlock.payments.providers.esewa import Esewa
from seatlock.payments.providers.khalti import Khalti
from seatlock.payments.providers.registry import build_providers
from seatlock.payments.providers.sandbox import Sandbox
from seatlock.payments.providers.sandbox_routes import sandbox_router
from seatlock.payments.providers.stripe import Stripe
from seatlock.problems import problem_details_plugin
from seatlock.settings import Settings, SettingsError, read_settings
from tests.payments.providers.fake_providers import make_checkout

SECRET = "sandbox-secret-for-the-tests-0123456789"
BASE_URL = "http://testserver.local"
Client = AsyncTestClient[Litestar]


def sandbox_settings(secret: str = SECRET) -> Settings:
    return Settings(env="test", sandbox_secret=secret, public_base_url=BASE_URL)


@pytest.fixture
def provider() -> Sandbox:
    return Sandbox(sandbox_settings())


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    # The routes as the service serves them: behind the role guard, errors as problems.
    settings = sandbox_settings()
    app = Litestar(
        route_handlers=[Router("/", route_handlers=[sandbox_router], guards=[authorize])],
        dependencies={"settings": Provide(lambda: settings, sync_to_thread=False)},
        plugins=[problem_details_plugin()],
        state=State({"settings": settings}),
    )
    async with AsyncTestClient(app=app, base_url=BASE_URL) as client:
        yield client


def page_of(initiated: Initiated) -> str:
    assert initiated.checkout_url is not None
    return urlsplit(initiated.checkout_url).path


def query_of(initiated: Initiated) -> str:
    assert initiated.checkout_url is not None
    return urlsplit(initiated.checkout_url).query


async def pay(client: Client, initiated: Initiated, action: str = "complete") -> dict[str, str]:
    """The query string the sandbox sends the browser back with."""
    response = await client.post(
        f"{page_of(initiated)}/{action}?{query_of(initiated)}", follow_redirects=False
    )
    assert response.status_code == 303, response.text
    return dict(parse_qsl(urlsplit(response.headers["location"]).query))


async def test_a_payment_completed_on_the_checkout_page_verifies(
    provider: Sandbox, client: Client
) -> None:
    checkout = make_checkout(amount_minor=150_000, currency="NPR")
    initiated = await provider.initiate(checkout)
    assert initiated.provider == "sandbox"
    assert initiated.checkout_url is not None
    assert initiated.checkout_url.startswith(
        f"{BASE_URL}/sandbox/checkout/{initiated.provider_reference}?"
    )

    page = await client.get(initiated.checkout_url)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    action = f"{initiated.provider_reference}/complete?{query_of(initiated)}"
    assert f'action="{action.replace("&", "&amp;")}"' in page.text
    assert str(checkout.payment_id) in page.text

    callback = await pay(client, initiated)
    outcome = await provider.verify(initiated.provider_reference, callback)

    assert (outcome.provider_reference, outcome.status) == (
        initiated.provider_reference,
        "succeeded",
    )
    assert (outcome.amount_minor, outcome.currency) == (150_000, "NPR")
    assert outcome.provider_event_id == callback["event_id"]


async def test_a_payment_failed_on_the_checkout_page_fails(
    provider: Sandbox, client: Client
) -> None:
    initiated = await provider.initiate(make_checkout())

    callback = await pay(client, initiated, "fail")

    assert (await provider.verify(initiated.provider_reference, callback)).status == "failed"


async def test_without_a_callback_the_payment_is_pending(provider: Sandbox) -> None:
    initiated = await provider.initiate(make_checkout(amount_minor=2_500, currency="USD"))

    outcome = await provider.verify(initiated.provider_reference, {})

    assert (outcome.status, outcome.amount_minor, outcome.currency) == ("pending", 2_500, "USD")
    assert outcome.provider_event_id is None


@pytest.mark.parametrize(
    "changes",
    [
        {"amount_minor": "1"},
        {"status": "succeeded"},
        {"currency": "USD"},
        {"event_id": "evt_replayed"},
        {"signature": "0" * 64},
        {"signature": "ünïcode"},
    ],
)
async def test_a_tampered_callback_is_refused(
    provider: Sandbox, client: Client, changes: dict[str, str]
) -> None:
    initiated = await provider.initiate(make_checkout())
    callback = await pay(client, initiated, "fail")

    with pytest.raises(InvalidCallback, match="signature"):
        await provider.verify(initiated.provider_reference, callback | changes)


async def test_a_callback_with_missing_fields_is_refused(provider: Sandbox, client: Client) -> None:
    initiated = await provider.initiate(make_checkout())
    callback = await pay(client, initiated)
    del callback["timestamp"]

    with pytest.raises(InvalidCallback, match="has the fields"):
        await provider.verify(initiated.provider_reference, callback)


async def test_the_browser_goes_back_to_the_return_url_with_the_callback(
    provider: Sandbox, client: Client
) -> None:
    # The shop's own parameters stay; one named like a callback field cannot pass for it.
    return_url = "https://shop.example/paid?order=42&status=forged#top"
    initiated = await provider.initiate(make_checkout(return_url=return_url))

    for action, status in (("fail", "failed"), ("complete", "succeeded")):
        response = await client.post(
            f"{page_of(initiated)}/{action}?{query_of(initiated)}", follow_redirects=False
        )

        assert response.status_code == 303
        back = urlsplit(response.headers["location"])
        assert (back.scheme, back.netloc, back.path, back.fragment) == (
            "https",
            "shop.example",
            "/paid",
            "top",
        )
        query = parse_qsl(back.query)
        assert [v for k, v in query if k == "status"] == [status]
        assert ("order", "42") in query
        # Every parameter of the query, the shop's own included, is accepted as the callback.
        outcome = await provider.verify(initiated.provider_reference, dict(query))
        assert outcome.status == status


async def test_a_checkout_page_never_sends_the_browser_elsewhere(
    provider: Sandbox, client: Client
) -> None:
    initiated = await provider.initiate(make_checkout(return_url="https://shop.example/paid"))
    query = dict(parse_qsl(query_of(initiated)))
    elsewhere = urlencode(query | {"return_url": "https://evil.example/"})
    unsigned = urlencode({"return_url": "https://shop.example/paid"})

    for page in (f"{page_of(initiated)}?{elsewhere}", f"{page_of(initiated)}?{unsigned}"):
        for response in (
            await client.get(page),
            await client.post(page.replace("?", "/complete?"), follow_redirects=False),
        ):
            assert response.status_code in {400, 404}, response.text
            assert "location" not in response.headers


async def test_a_callback_for_another_payment_is_refused(provider: Sandbox, client: Client) -> None:
    paid = await provider.initiate(make_checkout())
    other = await provider.initiate(make_checkout())
    callback = await pay(client, paid)

    with pytest.raises(InvalidCallback, match="another payment"):
        await provider.verify(other.provider_reference, callback)


async def test_a_callback_signed_by_another_sandbox_is_refused(client: Client) -> None:
    ours = Sandbox(sandbox_settings())
    theirs = Sandbox(sandbox_settings(secret="another-sandbox-secret-0123456789ab"))
    initiated = await ours.initiate(make_checkout())
    callback = await pay(client, initiated)

    with pytest.raises(InvalidCallback):
        await theirs.verify(initiated.provider_reference, callback)


async def test_a_forged_reference_has_no_checkout(provider: Sandbox, client: Client) -> None:
    forger = Sandbox(sandbox_settings(secret="a-forgers-own-secret-0123456789abcd"))
    forged = await forger.initiate(make_checkout())

    for response in (
        await client.get(forged.checkout_url or ""),
        await client.post(f"{page_of(forged)}/complete?{query_of(forged)}"),
    ):
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
    # Not even shaped like a reference: refused as the document's pattern says.
    malformed = await client.post(f"/sandbox/checkout/not-a-reference/fail?{query_of(forged)}")
    assert malformed.status_code == 400
    assert malformed.headers["content-type"] == "application/problem+json"
    with pytest.raises(InvalidCallback):
        await provider.verify(forged.provider_reference, {})


async def test_the_signed_callback_is_also_the_webhook(provider: Sandbox, client: Client) -> None:
    initiated = await provider.initiate(make_checkout(amount_minor=150_000))
    callback = await pay(client, initiated)

    outcome = await provider.parse_webhook(json.dumps(callback).encode(), {})

    assert (outcome.provider_reference, outcome.status, outcome.amount_minor) == (
        initiated.provider_reference,
        "succeeded",
        150_000,
    )
    assert outcome.provider_event_id == callback["event_id"]


async def test_a_stale_webhook_is_refused(
    provider: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    initiated = await provider.initiate(make_checkout())
    payment = sandbox.read_reference(SECRET, initiated.provider_reference)
    assert payment is not None
    with monkeypatch.context() as patched:
        patched.setattr(time, "time", lambda: 1_000_000_000.0)
        callback = sandbox.sign_callback(SECRET, initiated.provider_reference, payment, "succeeded")

    with pytest.raises(InvalidCallback, match="tolerance"):
        await provider.parse_webhook(json.dumps(callback).encode(), {})


@pytest.mark.parametrize("body", [b"", b"not json", b'{"reference": 1}', b"[]"])
async def test_a_malformed_webhook_is_refused(provider: Sandbox, body: bytes) -> None:
    with pytest.raises(InvalidCallback):
        await provider.parse_webhook(body, {})


async def test_refund_answers_a_refund_reference(provider: Sandbox) -> None:
    initiated = await provider.initiate(make_checkout())

    first = await provider.refund(initiated.provider_reference, 150_000, "NPR")
    second = await provider.refund(initiated.provider_reference, 150_000, "NPR")

    assert first.startswith("sandbox-refund-")
    assert first != second
    with pytest.raises(InvalidCallback):
        await provider.refund("not-a-reference", 150_000, "NPR")


async def test_without_keys_the_sandbox_serves_every_method() -> None:
    async with httpx.AsyncClient() as http:
        providers = build_providers(Settings(env="test"), http)

    assert set(providers) == set(PaymentMethod)
    assert all(isinstance(p, Sandbox) for p in providers.values())
    assert {p.name for p in providers.values()} == {"sandbox"}


async def test_a_method_with_keys_gets_its_real_adapter() -> None:
    settings = Settings(env="test", khalti_secret_key="k", stripe_secret_key="sk_test_1")
    async with httpx.AsyncClient() as http:
        providers = build_providers(settings, http)

    assert isinstance(providers[PaymentMethod.CARD], Stripe)
    assert isinstance(providers[PaymentMethod.KHALTI], Khalti)
    assert isinstance(providers[PaymentMethod.ESEWA], Sandbox)
    async with httpx.AsyncClient() as http:
        esewa = build_providers(Settings(env="test", esewa_secret_key="e"), http)[
            PaymentMethod.ESEWA
        ]
    assert isinstance(esewa, Esewa)
    assert {providers[m].name for m in PaymentMethod} == {"stripe", "khalti", "sandbox"}


PRODUCTION = {
    "SEATLOCK_ENV": "production",
    "DATABASE_URL": "postgresql+asyncpg://seatlock@db/seatlock",
    "REDIS_URL": "redis://redis:6379/0",
    "SEATLOCK_JWT_SECRET": "j" * 64,
}
ALL_KEYS = {
    "SEATLOCK_STRIPE_SECRET_KEY": "sk_live_1",
    "SEATLOCK_KHALTI_SECRET_KEY": "live_secret_key_1",
    "SEATLOCK_ESEWA_SECRET_KEY": "esewa-key",
    "SEATLOCK_SANDBOX_SECRET": "s" * 32,
}


def test_production_starts_with_every_provider_configured() -> None:
    settings = read_settings(PRODUCTION | ALL_KEYS)

    assert settings.payment_keys == {
        "CARD": "sk_live_1",
        "KHALTI": "live_secret_key_1",
        "ESEWA": "esewa-key",
    }


def test_production_refuses_free_sandbox_payments_unless_asked() -> None:
    environ = PRODUCTION | ALL_KEYS
    del environ["SEATLOCK_ESEWA_SECRET_KEY"]

    with pytest.raises(SettingsError, match="ESEWA"):
        read_settings(environ)
    read_settings(environ | {"SEATLOCK_SANDBOX_IN_PRODUCTION": "true"})


@pytest.mark.parametrize("secret", [None, "too-short"])
def test_production_refuses_a_default_or_short_sandbox_secret(secret: str | None) -> None:
    environ = PRODUCTION | ALL_KEYS
    del environ["SEATLOCK_SANDBOX_SECRET"]
    if secret is not None:
        environ["SEATLOCK_SANDBOX_SECRET"] = secret

    with pytest.raises(SettingsError, match="SEATLOCK_SANDBOX_SECRET"):
        read_settings(environ)
