"""The built-in sandbox provider: payments completed or failed by hand on a local page.

It keeps no state. The reference carries the payment's id, amount and currency under an
HMAC, the checkout page's address carries the payment's return URL under another, and the
page (`sandbox_routes`) sends the browser back to that URL with a callback in the query
string, signed the way a real provider signs one, so verification and webhooks take the
same paths as with a real provider, bad signatures and replays included.
"""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit

import msgspec

from seatlock.payments.providers.base import (
    Checkout,
    Initiated,
    InvalidCallback,
    Outcome,
    Status,
    check_fresh,
    hmac_sha256,
    signature_matches,
)
from seatlock.settings import Settings

CALLBACK_FIELDS = ("reference", "status", "amount_minor", "currency", "event_id", "timestamp")
SIGNATURE_FIELD = "signature"
# The checkout page's query: where to send the browser back, and the HMAC that keeps the
# page from redirecting anywhere else (an open redirect).
RETURN_FIELDS = ("return_url", "return_signature")
_FINAL: dict[str, Status] = {"succeeded": "succeeded", "failed": "failed"}


@dataclass(frozen=True)
class SandboxPayment:
    payment_id: uuid.UUID
    amount_minor: int
    currency: str


def _mac(secret: str, purpose: str, message: bytes) -> str:
    # The purpose keeps a reference's signature from passing for a callback's.
    return hmac_sha256(secret, purpose.encode() + b"\n" + message).hex()


def make_reference(secret: str, payment: SandboxPayment) -> str:
    payload = f"{payment.payment_id}:{payment.amount_minor}:{payment.currency}".encode()
    encoded = base64.urlsafe_b64encode(payload).rstrip(b"=")
    return f"{encoded.decode()}.{_mac(secret, 'reference', encoded)}"


def read_reference(secret: str, reference: str) -> SandboxPayment | None:
    """The payment a reference stands for; None unless this service signed it."""
    encoded, _, signature = reference.partition(".")
    if not signature_matches(signature, _mac(secret, "reference", encoded.encode())):
        return None
    padded = encoded + "=" * (-len(encoded) % 4)
    payment_id, amount, currency = base64.urlsafe_b64decode(padded).decode().split(":")
    return SandboxPayment(uuid.UUID(payment_id), int(amount), currency)


def sign_return(secret: str, reference: str, return_url: str) -> dict[str, str]:
    """The checkout page's query string, naming the payment's return URL."""
    message = f"{reference}\n{return_url}".encode()
    return dict(zip(RETURN_FIELDS, (return_url, _mac(secret, "return", message)), strict=True))


def read_return(secret: str, reference: str, query: Mapping[str, str]) -> str | None:
    """The return URL of a checkout page's query; None unless this service signed it."""
    return_url, signature = (query.get(name, "") for name in RETURN_FIELDS)
    expected = _mac(secret, "return", f"{reference}\n{return_url}".encode())
    return return_url if return_url and signature_matches(signature, expected) else None


def returning_to(return_url: str, callback: Mapping[str, str]) -> str:
    """The return URL with the callback added to its query, as providers send buyers back;
    the URL's own parameters stay, but none may pass for a field of the callback."""
    parts = urlsplit(return_url)
    own = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in callback]
    return parts._replace(query=urlencode([*own, *callback.items()])).geturl()


def _canonical(fields: Mapping[str, str]) -> bytes:
    # A JSON list of the values in a fixed order: no value can pass for another field.
    return msgspec.json.encode([fields[name] for name in CALLBACK_FIELDS])


def sign_callback(
    secret: str, reference: str, payment: SandboxPayment, status: Status
) -> dict[str, str]:
    """The callback the checkout page answers with, signed as a provider would sign it."""
    fields = {
        "reference": reference,
        "status": status,
        "amount_minor": str(payment.amount_minor),
        "currency": payment.currency,
        "event_id": f"evt_{secrets.token_hex(12)}",
        "timestamp": str(int(time.time())),
    }
    return {**fields, SIGNATURE_FIELD: _mac(secret, "callback", _canonical(fields))}


class Sandbox:
    name = "sandbox"
    currencies: frozenset[str] | None = None

    def __init__(self, settings: Settings) -> None:
        self._secret = settings.sandbox_secret
        self._base_url = settings.base_url
        self._tolerance = settings.webhook_tolerance_seconds

    async def initiate(self, checkout: Checkout) -> Initiated:
        payment = SandboxPayment(checkout.payment_id, checkout.amount_minor, checkout.currency)
        reference = make_reference(self._secret, payment)
        query = urlencode(sign_return(self._secret, reference, checkout.return_url))
        checkout_url = f"{self._base_url}/sandbox/checkout/{reference}?{query}"
        return Initiated(self.name, reference, checkout_url, {})

    async def verify(self, provider_reference: str, callback: Mapping[str, str]) -> Outcome:
        payment = read_reference(self._secret, provider_reference)
        if payment is None:
            raise InvalidCallback("not a reference of this sandbox")
        if not callback:
            return Outcome(
                provider_reference, "pending", payment.amount_minor, payment.currency, None
            )
        outcome = self._read_callback(callback)
        if outcome.provider_reference != provider_reference:
            raise InvalidCallback("the callback belongs to another payment")
        return outcome

    async def parse_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> Outcome:
        try:
            fields = msgspec.json.decode(raw_body, type=dict[str, str])
        except msgspec.DecodeError as exc:
            raise InvalidCallback(f"the webhook body is not a sandbox callback: {exc}") from exc
        outcome = self._read_callback(fields)
        # Signed, so the timestamp is the sandbox's own.
        check_fresh(int(fields["timestamp"]), self._tolerance)
        return outcome

    async def refund(self, provider_reference: str, amount_minor: int, currency: str) -> str:
        if read_reference(self._secret, provider_reference) is None:
            raise InvalidCallback("not a reference of this sandbox")
        return f"sandbox-refund-{secrets.token_hex(8)}"

    def _read_callback(self, fields: Mapping[str, str]) -> Outcome:
        # Other fields are the return URL's own query parameters, which a frontend may pass
        # on with the rest; unsigned, they count for nothing.
        if not {*CALLBACK_FIELDS, SIGNATURE_FIELD} <= set(fields):
            raise InvalidCallback(
                f"a sandbox callback has the fields {', '.join(CALLBACK_FIELDS)} "
                f"and {SIGNATURE_FIELD}"
            )
        expected = _mac(self._secret, "callback", _canonical(fields))
        if not signature_matches(fields[SIGNATURE_FIELD], expected):
            raise InvalidCallback("the callback's signature does not match")
        return Outcome(
            provider_reference=fields["reference"],
            status=_FINAL[fields["status"]],
            amount_minor=int(fields["amount_minor"]),
            currency=fields["currency"],
            provider_event_id=fields["event_id"],
        )
