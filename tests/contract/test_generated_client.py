"""The OpenAPI document is good enough to build a client from: openapi-python-client
generates one from /schema/openapi.json, and a buyer's whole journey runs through it, each
step answered with its typed model."""

from __future__ import annotations

import asyncio
import importlib
import sys
import uuid
from pathlib import Path
from types import ModuleType
from urllib.parse import parse_qsl, urlsplit

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.clients import PASSWORD, Client
from tests.factories import create_event

PACKAGE = "seatlock_client"


async def _generate(client: Client, into: Path) -> None:
    document = into / "openapi.json"
    document.write_bytes((await client.get("/schema/openapi.json")).content)
    config = into / "config.yaml"
    config.write_text(f"package_name_override: {PACKAGE}\nproject_name_override: seatlock-client\n")
    command = ["-m", "openapi_python_client", "generate", "--meta", "none", "--path", str(document)]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *command,
        "--config",
        str(config),
        "--output-path",
        str(into / PACKAGE),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = (await process.communicate())[0].decode()
    assert process.returncode == 0, output
    # The generator skips, with a warning, every operation or schema it cannot read.
    assert "WARNING" not in output, output


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.{name}")


async def test_a_generated_client_takes_a_buyer_from_sign_up_to_a_confirmed_booking(
    client: Client, engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _generate(client, tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    models, api = _module("models"), importlib.import_module(PACKAGE)
    event = await create_event(engine, price_minor=2500)
    # The generated client sends its requests through the suite's client of the app; the
    # sandbox's redirect is read, not followed, as the checkout page would.
    client.follow_redirects = False
    anonymous = api.Client(base_url=str(client.base_url)).set_async_httpx_client(client)

    signed_up = await _module("api.auth.register_account").asyncio(
        client=anonymous,
        body=models.RegisterBody(email="ada@example.test", password=PASSWORD, full_name="Ada"),
    )
    assert isinstance(signed_up, models.TokenOut)
    token = await _module("api.auth.login").asyncio(
        client=anonymous, body=models.LoginBody(email="ada@example.test", password=PASSWORD)
    )
    assert isinstance(token, models.TokenOut)
    assert token.user.email == "ada@example.test"
    client.headers["Authorization"] = f"Bearer {token.access_token}"
    buyer = api.AuthenticatedClient(base_url=str(client.base_url), token=token.access_token)
    buyer.set_async_httpx_client(client)

    seats = event.seat_ids[:2]
    hold = await _module("api.holds.create_hold").asyncio(
        event.id, client=buyer, body=models.ChosenSeats(seat_ids=seats)
    )
    assert isinstance(hold, models.Hold)
    assert hold.seats == seats

    booking = await _module("api.bookings.book_hold").asyncio(
        client=buyer, body=models.BookingRequest(hold_id=hold.id), idempotency_key=str(uuid.uuid4())
    )
    assert isinstance(booking, models.BookingOut)
    assert booking.status == models.BookingStatus.PENDING_PAYMENT
    assert (booking.event.title, booking.total_minor, booking.currency) == (
        "Test concert",
        5000,
        "USD",
    )
    assert [(s.section, s.row, s.number, s.price_minor) for s in booking.seats] == [
        ("A", "1", 1, 2500),
        ("A", "1", 2, 2500),
    ]

    payment = await _module("api.payments.initiate_payment").asyncio(
        client=buyer,
        body=models.InitiateRequest(booking_id=booking.id, method=models.PaymentMethod.CARD),
        idempotency_key=str(uuid.uuid4()),
    )
    assert isinstance(payment, models.PaymentOut)
    assert payment.status == models.PaymentStatus.INITIATED

    checkout = urlsplit(payment.checkout_url)
    returned = await _module("api.sandbox.complete_sandbox_payment").asyncio_detailed(
        checkout.path.rpartition("/")[2], client=anonymous, **dict(parse_qsl(checkout.query))
    )
    assert returned.status_code == 303
    callback = dict(parse_qsl(urlsplit(returned.headers["location"]).query))

    verified = await _module("api.payments.verify_payment").asyncio(
        client=buyer,
        body=models.VerifyRequest(
            payment_id=payment.id, callback=models.VerifyRequestCallback.from_dict(callback)
        ),
    )
    assert isinstance(verified, models.PaymentOut)
    assert verified.status == models.PaymentStatus.SUCCEEDED

    confirmed = await _module("api.bookings.get_booking").asyncio(booking.id, client=buyer)
    assert isinstance(confirmed, models.BookingOut)
    assert confirmed.status == models.BookingStatus.CONFIRMED
    assert [(p.id, p.status) for p in confirmed.payments] == [
        (payment.id, models.PaymentStatus.SUCCEEDED)
    ]
    [listed] = (await _module("api.bookings.list_my_bookings").asyncio(client=buyer)).items
    assert listed.id == booking.id
