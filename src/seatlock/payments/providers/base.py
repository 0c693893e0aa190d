"""The payment provider interface, and what its adapters share: calling a provider's API,
HMAC signatures, and the freshness of a signed notification.

An adapter only talks to its provider: it holds no lock and no database session, since
nothing may be held across a call to a provider. Whether an outcome confirms a booking
(amounts, currency, exactly once) is for the caller to decide.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

import httpx
import msgspec

from seatlock.errors import DomainError, InvalidInput, Unavailable

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
    cause = "provider"


class PaymentProvider(Protocol):
    name: str
    # The currencies the provider takes; None for any. The payment service refuses any
    # other before the provider is called, so an adapter need not check again.
    currencies: frozenset[str] | None

    async def initiate(self, checkout: Checkout) -> Initiated: ...

    async def verify(self, provider_reference: str, callback: Mapping[str, str]) -> Outcome:
        """Server-side confirmation: checks the signature of what the buyer's browser brought
        back where the provider signs it, and asks the provider where it can be asked."""
        ...

    async def parse_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> Outcome: ...

    async def refund(self, provider_reference: str, amount_minor: int, currency: str) -> str: ...


@dataclass(frozen=True)
class ProviderApi:
    """A provider's HTTP API as an adapter calls it: where it lives, the headers that
    authenticate us, and how long we wait for it."""

    http: httpx.AsyncClient
    # The provider as logs and error messages name it.
    provider: str
    base_url: str
    timeout: float
    headers: Mapping[str, str] = field(default_factory=dict)

    def url(self, path: str) -> httpx.URL:
        """`path` below the base URL; a leading `../` climbs out of it."""
        return httpx.URL(self.base_url.rstrip("/") + "/").join(path)

    async def call(
        self,
        method: str,
        path: str,
        answer: type[T],
        *,
        refused: Callable[[str], DomainError],
        form: Mapping[str, str] | None = None,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> T:
        """Sends one request and decodes the JSON answer as `answer`.

        A provider that cannot be reached, fails, or refuses our key is unavailable; any other
        4xx is the request's fault and raises `refused`, which says whose fault that is.
        """
        request = self.http.build_request(
            method,
            self.url(path),
            data=form,
            json=json,
            params=params,
            headers={**self.headers, **(headers or {})},
            timeout=self.timeout,
        )
        try:
            response = await self.http.send(request)
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"{self.provider} could not be reached") from exc
        self._check_status(request, response, refused)
        try:
            return msgspec.json.decode(response.content, type=answer)
        except msgspec.DecodeError as exc:
            raise ProviderUnavailable(
                f"{self.provider} answered something unexpected: {exc}"
            ) from exc

    def _check_status(
        self,
        request: httpx.Request,
        response: httpx.Response,
        refused: Callable[[str], DomainError],
    ) -> None:
        if response.is_success:
            return
        status = response.status_code
        logger.warning(
            "%s answered %s to %s %s: %.500s",
            self.provider,
            status,
            request.method,
            request.url.path,
            response.text,
        )
        if status >= 500 or status in _NOT_THE_CALLERS_FAULT:
            raise ProviderUnavailable(f"{self.provider} answered HTTP {status}")
        raise refused(f"{self.provider} refused the request (HTTP {status})")


def hmac_sha256(secret: str, message: bytes) -> bytes:
    """The raw HMAC-SHA256 digest; each provider writes it out its own way (hex, base64)."""
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


def signature_matches(given: str, expected: str) -> bool:
    """Compares in constant time. The given signature is whatever the caller sent, and
    compare_digest refuses a non-ASCII str, so both are compared as bytes."""
    return hmac.compare_digest(given.encode(), expected.encode())


def check_fresh(timestamp: int, tolerance_seconds: float) -> None:
    """Refuses a signed notification whose timestamp is too far from now: the signature
    covers the timestamp, so an old one is a replay."""
    if abs(time.time() - timestamp) > tolerance_seconds:
        raise InvalidCallback("the webhook's timestamp is outside the tolerance")
