"""/sandbox: the sandbox provider's checkout page, where a payment is completed or failed.

Completing or failing answers with the signed callback a real provider would hand back;
the client passes it on to payment verification, or posts it as the sandbox's webhook.
"""

from __future__ import annotations

import html

from litestar import Router, get, post
from litestar.enums import MediaType
from litestar.params import FromPath

from seatlock import deps
from seatlock.auth.access import PUBLIC
from seatlock.errors import NotFound
from seatlock.payments.providers import sandbox
from seatlock.payments.providers.base import Status

# The forms' actions are relative to the page's own address, wherever the router is mounted.
_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Sandbox checkout</title></head>
<body>
<h1>Sandbox checkout</h1>
<p>Payment {payment_id}: {amount_minor} {currency} (in minor units). No money moves.</p>
<form method="post" action="{reference}/complete"><button>Pay</button></form>
<form method="post" action="{reference}/fail"><button>Fail</button></form>
</body>
</html>
"""


def _payment(settings: deps.Settings, reference: str) -> sandbox.SandboxPayment:
    payment = sandbox.read_reference(settings.sandbox_secret, reference)
    if payment is None:
        raise NotFound("no sandbox checkout has this reference")
    return payment


def _callback(settings: deps.Settings, reference: str, status: Status) -> dict[str, str]:
    payment = _payment(settings, reference)
    return sandbox.sign_callback(settings.sandbox_secret, reference, payment, status)


@get("/checkout/{reference:str}", roles=PUBLIC, media_type=MediaType.HTML)
async def checkout_page(reference: FromPath[str], settings: deps.Settings) -> str:
    payment = _payment(settings, reference)
    return _PAGE.format(
        reference=html.escape(reference),
        payment_id=payment.payment_id,
        amount_minor=payment.amount_minor,
        currency=html.escape(payment.currency),
    )


@post("/checkout/{reference:str}/complete", roles=PUBLIC, status_code=200)
async def complete(reference: FromPath[str], settings: deps.Settings) -> dict[str, str]:
    return _callback(settings, reference, "succeeded")


@post("/checkout/{reference:str}/fail", roles=PUBLIC, status_code=200)
async def fail(reference: FromPath[str], settings: deps.Settings) -> dict[str, str]:
    return _callback(settings, reference, "failed")


sandbox_router = Router(
    "/sandbox", route_handlers=[checkout_page, complete, fail], tags=["sandbox"]
)
