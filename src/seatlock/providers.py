"""The payment provider interface, and which provider serves each payment method.

An adapter only talks to its provider: it holds no lock and no database session, since
nothing may be held across a call to a provider. Whether an outcome confirms a booking
(amounts, currency, exactly once) is for the caller to decide.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

import httpx
import msgspec

from seatlock.errors import DomainError, InvalidInput, Unavailable
from seatlock.models import PaymentMethod
from seatlock.settings import Settings

logger = logging.getLogger("seatlock")

Status = Literal["succeeded", "failed", "pending"]
T = TypeVar("T")

# Our key refused or our rate exceeded: nothing the buyer did, so the provider counts as
# unavailable rather than the request as bad.
_NOT_THE_CALLERS_FAULT = frozenset({401, 403, 429})


@dataclass(frozen=True)
class Checkout:
    payment_id: uuid.UUID
    booking_id: uuid.UUID
    amount_minor: int
    currency: str
    description: str
    return_url: str
    customer_email: str


@dataclass(frozen=True)
class Initiated:
    provider: str
    provider_reference: str
    # None when the client pays in-page (Stripe's client_secret in `fields`).
    checkout_url: str | None
    fields: dict[str, str]


@dataclass(frozen=True)
class Outcome:
    provider_reference: str
    status: Status
    amount_minor: int
    currency: str
    # The provider's id of the notification, for deduplication; None for lookups.
    provider_event_id: str | None


class InvalidCallback(InvalidInput):
    """A callback or webhook with a bad signature, a stale timestamp, a tampered body or
    malformed data, or a reference the provider does not know."""

    slug = "invalid-callback"
    title = "The payment callback cannot be trusted"


class ProviderUnavailable(Unavailable):
    """The provider could not be reached, or answered with an error of its own."""

    slug = "provider-unavailable"
    title = "The payment provider is unavailable"


class PaymentProvider(Protocol):
    name: str
    # The currencies the provider takes; None for any.
    currencies: frozenset[str] | None

    async def initiate(self, checkout: Checkout) -> Initiated: ...

    async def verify(self, provider_reference: str, callback: Mapping[str, str]) -> Outcome:
        """Server-side confirmation: checks the signature of what the buyer's browser brought
        back where the provider signs it, and asks the provider where it can be asked."""
        ...

    async def parse_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> Outcome: ...

    async def refund(self, provider_reference: str, amount_minor: int, currency: str) -> str: ...


async def send(
    http: httpx.AsyncClient,
    request: httpx.Request,
    provider: str,
    answer: type[T],
    refused: Callable[[str], DomainError] = ProviderUnavailable,
) -> T:
    """Sends one request to a provider and decodes its JSON answer as `answer`.

    A provider that cannot be reached, fails, or refuses our key is unavailable; any other
    4xx is the request's fault and raises `refused`.
    """
    try:
        response = await http.send(request)
    except httpx.HTTPError as exc:
        raise ProviderUnavailable(f"{provider} could not be reached") from exc
    status = response.status_code
    if not response.is_success:
        logger.warning(
            "%s answered %s to %s %s: %.500s",
            provider,
            status,
            request.method,
            request.url.path,
            response.text,
        )
        if status >= 500 or status in _NOT_THE_CALLERS_FAULT:
            raise ProviderUnavailable(f"{provider} answered HTTP {status}")
        raise refused(f"{provider} refused the request (HTTP {status})")
    try:
        return msgspec.json.decode(response.content, type=answer)
    except msgspec.DecodeError as exc:
        raise ProviderUnavailable(f"{provider} answered something unexpected: {exc}") from exc


def build_providers(
    settings: Settings, http: httpx.AsyncClient
) -> dict[PaymentMethod, PaymentProvider]:
    """The provider of each payment method: its real adapter where its keys are configured,
    the sandbox otherwise."""
    # The adapters import this module's types, so they can only be imported once it exists.
    from seatlock.card import Card
    from seatlock.esewa import Esewa
    from seatlock.khalti import Khalti
    from seatlock.sandbox import Sandbox

    adapters: dict[PaymentMethod, Callable[[], PaymentProvider]] = {
        PaymentMethod.CARD: lambda: Card(settings, http),
        PaymentMethod.KHALTI: lambda: Khalti(settings, http),
        PaymentMethod.ESEWA: lambda: Esewa(settings, http),
    }
    sandbox = Sandbox(settings)
    return {
        method: adapters[method]() if settings.payment_keys[method] else sandbox
        for method in PaymentMethod
    }
