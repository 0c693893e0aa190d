"""/sandbox: the sandbox provider's checkout page, where a payment is completed or failed.

Completing or failing sends the browser back (303) to the payment's return URL with the
signed callback in the query string, as a real provider does; the client passes those
parameters on to payment verification, or posts them as the sandbox's webhook.
"""

from __future__ import annotations

import html
from typing import Annotated
from urllib.parse import urlencode

from litestar import Router, get, post
from litestar.enums import MediaType
from litestar.params import Parameter
from litestar.response import Redirect

from seatlock import deps
from seatlock.auth.access import PUBLIC
from seatlock.bodies import END
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
<form method="post" action="{reference}/complete?{query}"><button>Pay</button></form>
<form method="post" action="{reference}/fail?{query}"><button>Fail</button></form>
</body>
</html>
"""


def _payment(settings: deps.Settings, reference: str) -> sandbox.SandboxPayment:
    payment = sandbox.read_reference(settings.sandbox_secret, reference)
    if payment is None:
        raise NotFound("no sandbox checkout has this reference")
    return payment


# What the sandbox makes (base64url of the payment, a dot, its HMAC in hex), so that the
# document lets no client send what is no reference, control characters in a path included.
Reference = Annotated[
    str,
    Parameter(
        pattern=rf"^[A-Za-z0-9_-]+\.[0-9a-f]{{64}}{END}",
        max_length=300,
        description="the reference the sandbox gave at initiation",
    ),
]
# The checkout page's query, as the sandbox signed it at initiation.
ReturnUrl = Annotated[str, Parameter(max_length=8192)]
ReturnSignature = Annotated[str, Parameter(max_length=100)]


def _return_url(settings: deps.Settings, reference: str, query: dict[str, str]) -> str:
    signed = sandbox.read_return(settings.sandbox_secret, reference, query)
    if signed is None:
        raise NotFound("no sandbox checkout has this address")
    return signed


def _back(
    settings: deps.Settings, reference: str, query: dict[str, str], status: Status
) -> Redirect:
    payment = _payment(settings, reference)
    return_url = _return_url(settings, reference, query)
    callback = sandbox.sign_callback(settings.sandbox_secret, reference, payment, status)
    # 303: the browser follows with a GET, as after any provider's payment form.
    return Redirect(sandbox.returning_to(return_url, callback), status_code=303)


@get(
    "/checkout/{reference:str}",
    roles=PUBLIC,
    media_type=MediaType.HTML,
    operation_id="showSandboxCheckout",
)
async def checkout_page(
    reference: Reference,
    return_url: ReturnUrl,
    return_signature: ReturnSignature,
    settings: deps.Settings,
) -> str:
    """The sandbox's checkout page (HTML): Pay or Fail, no money moves."""
    payment = _payment(settings, reference)
    query = {"return_url": return_url, "return_signature": return_signature}
    _return_url(settings, reference, query)
    return _PAGE.format(
        reference=html.escape(reference),
        query=html.escape(urlencode(query)),
        payment_id=payment.payment_id,
        amount_minor=payment.amount_minor,
        currency=html.escape(payment.currency),
    )


@post(
    "/checkout/{reference:str}/complete",
    roles=PUBLIC,
    status_code=303,
    operation_id="completeSandboxPayment",
)
async def complete(
    reference: Reference,
    return_url: ReturnUrl,
    return_signature: ReturnSignature,
    settings: deps.Settings,
) -> Redirect:
    """Completes the sandbox payment: back to its `return_url` with the signed callback."""
    query = {"return_url": return_url, "return_signature": return_signature}
    return _back(settings, reference, query, "succeeded")


@post(
    "/checkout/{reference:str}/fail",
    roles=PUBLIC,
    status_code=303,
    operation_id="failSandboxPayment",
)
async def fail(
    reference: Reference,
    return_url: ReturnUrl,
    return_signature: ReturnSignature,
    settings: deps.Settings,
) -> Redirect:
    """Fails the sandbox payment: back to its `return_url` with the signed callback."""
    query = {"return_url": return_url, "return_signature": return_signature}
    return _back(settings, reference, query, "failed")


sandbox_router = Router(
    "/sandbox", route_handlers=[checkout_page, complete, fail], tags=["sandbox"]
)
