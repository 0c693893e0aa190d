"""Local fakes of Khalti's, eSewa's and Stripe's documented APIs, as small Litestar apps.

Each fake checks what the real API checks (keys, signatures, required fields), records
the requests it was sent, and lets a test play the buyer (pay, decline) or the provider
(fail with 500, report another amount). The adapters reach them in-process through
httpx's ASGI transport, so no port is opened.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from litestar import Litestar, Request, Response, get, post
from litestar.params import FromPath
from litestar.response import Redirect

from seatlock.payments.providers.base import Checkout

KHALTI_KEY = "test_secret_key_0123456789abcdef"
# eSewa's published UAT key and product code.
ESEWA_KEY = "8gBm/:&EnhH.1/q"
ESEWA_PRODUCT = "EPAYTEST"
STRIPE_KEY = "sk_test_0123456789abcdef"
STRIPE_WEBHOOK_SECRET = "whsec_0123456789abcdef"

AnyRequest = Request[Any, Any, Any]
# What a fake Stripe route makes: the object it answers with, or an error response.
Answer = dict[str, Any] | Response[Any]


def client_for(app: Litestar) -> httpx.AsyncClient:
    # Litestar's scope types are narrower than the plain ASGI ones httpx asks for.
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app))  # type: ignore[arg-type]


def make_checkout(
    amount_minor: int = 150_000,
    currency: str = "NPR",
    return_url: str = "https://shop.test/payments/return",
) -> Checkout:
    return Checkout(
        payment_id=uuid.uuid4(),
        booking_id=uuid.uuid4(),
        amount_minor=amount_minor,
        currency=currency,
        description="2 seats, Row A",
        return_url=return_url,
        customer_email="buyer@example.test",
    )


@dataclass
class Seen:
    """One request a fake was sent."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return dict(httpx.QueryParams(self.body.decode()))


@dataclass
class Fake:
    seen: list[Seen] = field(default_factory=list)
    failing: bool = False

    async def record(self, request: AnyRequest) -> Seen:
        # Litestar drops a trailing slash from the path it routes by; Khalti's paths have one.
        path = request.scope["raw_path"].decode()
        seen = Seen(request.method, path, dict(request.headers), await request.body())
        self.seen.append(seen)
        return seen


def _error(status: int, body: dict[str, Any]) -> Response[Any]:
    return Response(body, status_code=status)


@dataclass
class FakeKhalti(Fake):
    """Khalti ePayment: /api/v2/epayment/{initiate,lookup}/ and the refund API."""

    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: list[tuple[str, int]] = field(default_factory=list)

    def pay(self, pidx: str, amount: int | None = None) -> None:
        payment = self.payments[pidx]
        payment["status"] = "Completed"
        payment["transaction_id"] = secrets.token_urlsafe(16)
        if amount is not None:
            payment["total_amount"] = amount

    def _refusal(self, seen: Seen) -> Response[Any] | None:
        if self.failing:
            return _error(500, {"detail": "Internal server error"})
        if seen.headers.get("authorization") != f"Key {KHALTI_KEY}":
            return _error(401, {"detail": "Invalid token.", "status_code": 401})
        return None

    def app(self) -> Litestar:
        @post("/api/v2/epayment/initiate/", status_code=200)
        async def initiate(request: AnyRequest) -> Response[Any]:
            seen = await self.record(request)
            if refusal := self._refusal(seen):
                return refusal
            body = seen.json()
            missing = [
                name
                for name in ("return_url", "website_url", "amount", "purchase_order_id")
                if name not in body
            ]
            if missing:
                return _error(400, {name: ["This field is required."] for name in missing})
            if not isinstance(body["amount"], int) or body["amount"] < 1000:
                return _error(400, {"amount": ["Amount should be greater than Rs. 10"]})
            pidx = secrets.token_urlsafe(16)
            self.payments[pidx] = {
                "pidx": pidx,
                "total_amount": body["amount"],
                "status": "Initiated",
                "transaction_id": None,
                "fee": 0,
                "refunded": False,
            }
            return Response(
                {
                    "pidx": pidx,
                    "payment_url": f"https://test-pay.khalti.com/?pidx={pidx}",
                    "expires_at": "2030-01-01T00:30:00+05:45",
                    "expires_in": 1800,
                }
            )

        @post("/api/v2/epayment/lookup/", status_code=200)
        async def lookup(request: AnyRequest) -> Response[Any]:
            seen = await self.record(request)
            if refusal := self._refusal(seen):
                return refusal
            payment = self.payments.get(seen.json().get("pidx"))
            if payment is None:
                return _error(404, {"detail": "Not found.", "error_key": "validation_error"})
            return Response(payment)

        @post("/api/merchant-transaction/{transaction_id:str}/refund/", status_code=200)
        async def refund(request: AnyRequest, transaction_id: FromPath[str]) -> Response[Any]:
            seen = await self.record(request)
            if refusal := self._refusal(seen):
                return refusal
            found = [p for p in self.payments.values() if p["transaction_id"] == transaction_id]
            if not found or found[0]["status"] != "Completed":
                return _error(400, {"detail": "Transaction cannot be refunded."})
            found[0]["status"], found[0]["refunded"] = "Refunded", True
            self.refunds.append((transaction_id, seen.json().get("amount")))
            return Response({"detail": "Transaction refund successful."})

        return Litestar([initiate, lookup, refund])


def esewa_sign(key: str, fields: dict[str, str], names: list[str]) -> str:
    message = ",".join(f"{name}={fields[name]}" for name in names)
    return base64.b64encode(
        hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()
    ).decode()


def esewa_answer(key: str, **fields: Any) -> str:
    """eSewa's base64 answer to the success URL, signed with `key`."""
    names = [*fields, "signed_field_names"]
    signed = {**fields, "signed_field_names": ",".join(names)}
    signature = esewa_sign(key, {k: str(v) for k, v in signed.items()}, names)
    return base64.b64encode(json.dumps({**signed, "signature": signature}).encode()).decode()


@dataclass
class FakeEsewa(Fake):
    """eSewa ePay v2: the payment form and the status check."""

    transactions: dict[str, dict[str, Any]] = field(default_factory=dict)
    # What the buyer does on eSewa's pages: pay, or cancel.
    buyer_pays: bool = True

    def app(self) -> Litestar:
        @post("/api/epay/main/v2/form", status_code=200)
        async def form(request: AnyRequest) -> Response[Any]:
            seen = await self.record(request)
            if self.failing:
                return _error(500, {"error_message": "Internal server error"})
            fields = seen.form()
            names = fields.get("signed_field_names", "").split(",")
            if names != ["total_amount", "transaction_uuid", "product_code"] or fields.get(
                "signature"
            ) != esewa_sign(ESEWA_KEY, fields, names):
                return _error(400, {"code": 0, "error_message": "Invalid payload signature."})
            uuid_ = fields["transaction_uuid"]
            if not self.buyer_pays:
                self.transactions[uuid_] = {"total_amount": 0.0, "status": "CANCELED"}
                return Redirect(fields["failure_url"], status_code=302)
            total = float(fields["total_amount"])
            self.transactions[uuid_] = {"total_amount": total, "status": "COMPLETE"}
            data = esewa_answer(
                ESEWA_KEY,
                transaction_code="000AWEO",
                status="COMPLETE",
                total_amount=total,
                transaction_uuid=uuid_,
                product_code=fields["product_code"],
            )
            return Redirect(f"{fields['success_url']}?data={quote(data)}", status_code=302)

        @get("/api/epay/transaction/status/")
        async def status(request: AnyRequest) -> Response[Any]:
            await self.record(request)
            if self.failing:
                return _error(500, {"error_message": "Internal server error"})
            query = request.query_params
            if not all(query.get(n) for n in ("product_code", "total_amount", "transaction_uuid")):
                return _error(400, {"code": 0, "error_message": "Invalid request parameters."})
            uuid_ = query["transaction_uuid"]
            found = self.transactions.get(uuid_) if query["product_code"] == ESEWA_PRODUCT else None
            answer = {
                "product_code": query["product_code"],
                "transaction_uuid": uuid_,
                "total_amount": float(query["total_amount"]),
                "status": "NOT_FOUND",
                "ref_id": None,
            }
            if found is not None:
                answer |= {**found, "ref_id": "0001TS9"}
            return Response(answer)

        return Litestar([form, status])


def stripe_signature(
    body: bytes, secret: str = STRIPE_WEBHOOK_SECRET, at: int | None = None
) -> str:
    timestamp = str(int(time.time()) if at is None else at)
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


@dataclass
class FakeStripe(Fake):
    """Stripe: PaymentIntents (create, retrieve), refunds, and the events it would send."""

    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Stripe answers a repeated Idempotency-Key with the first answer.
    idempotent: dict[str, Any] = field(default_factory=dict)

    def settle(self, intent_id: str, status: str, amount_received: int | None = None) -> None:
        intent = self.intents[intent_id]
        intent["status"] = status
        if status == "succeeded":
            intent["amount_received"] = (
                intent["amount"] if amount_received is None else amount_received
            )

    def event(self, intent_id: str, type_: str) -> bytes:
        event = {
            "id": f"evt_{secrets.token_hex(12)}",
            "object": "event",
            "type": type_,
            "created": int(time.time()),
            "data": {"object": self.intents[intent_id]},
        }
        return json.dumps(event).encode()

    def _refusal(self, seen: Seen) -> Response[Any] | None:
        if self.failing:
            return _error(500, {"error": {"type": "api_error", "message": "Something broke"}})
        if seen.headers.get("authorization") != f"Bearer {STRIPE_KEY}":
            return _error(401, {"error": {"type": "invalid_request_error"}})
        return None

    def _answer(self, seen: Seen, make: Callable[[], Answer]) -> Response[Any]:
        key = seen.headers.get("idempotency-key")
        if key and key in self.idempotent:
            return Response(self.idempotent[key])
        answer = make()
        if isinstance(answer, Response):
            return answer
        if key:
            self.idempotent[key] = answer
        return Response(answer)

    def app(self) -> Litestar:
        @post("/v1/payment_intents", status_code=200)
        async def create(request: AnyRequest) -> Response[Any]:
            seen = await self.record(request)
            if refusal := self._refusal(seen):
                return refusal
            form = seen.form()

            def make() -> Answer:
                if not form.get("amount", "").isdigit() or int(form["amount"]) < 1:
                    return _error(400, {"error": {"type": "invalid_request_error"}})
                intent_id = f"pi_{secrets.token_hex(12)}"
                self.intents[intent_id] = {
                    "id": intent_id,
                    "object": "payment_intent",
                    "amount": int(form["amount"]),
                    "amount_received": 0,
                    "currency": form["currency"],
                    "status": "requires_payment_method",
                    "client_secret": f"{intent_id}_secret_{secrets.token_hex(8)}",
                    "metadata": {
                        k[len("metadata[") : -1]: v
                        for k, v in form.items()
                        if k.startswith("metadata[")
                    },
                }
                return self.intents[intent_id]

            return self._answer(seen, make)

        @get("/v1/payment_intents/{intent_id:str}")
        async def retrieve(request: AnyRequest, intent_id: FromPath[str]) -> Response[Any]:
            seen = await self.record(request)
            if refusal := self._refusal(seen):
                return refusal
            if intent_id not in self.intents:
                return _error(
                    404, {"error": {"type": "invalid_request_error", "code": "resource_missing"}}
                )
            return Response(self.intents[intent_id])

        @post("/v1/refunds", status_code=200)
        async def refund(request: AnyRequest) -> Response[Any]:
            seen = await self.record(request)
            if refusal := self._refusal(seen):
                return refusal
            form = seen.form()

            def make() -> Answer:
                intent = self.intents.get(form.get("payment_intent", ""))
                if intent is None or intent["status"] != "succeeded":
                    return _error(400, {"error": {"code": "charge_not_refundable"}})
                refund_id = f"re_{secrets.token_hex(12)}"
                self.refunds[refund_id] = {
                    "id": refund_id,
                    "object": "refund",
                    "amount": int(form["amount"]),
                    "payment_intent": intent["id"],
                    "status": "succeeded",
                }
                return self.refunds[refund_id]

            return self._answer(seen, make)

        return Litestar([create, retrieve, refund])
