"""The page a buyer's browser lands on after paying when the shop named no return URL."""

from __future__ import annotations

from litestar import get
from litestar.enums import MediaType

from seatlock.auth.access import PUBLIC

# Static: whatever the provider put in the query string is for the shop to verify, and
# is neither trusted nor shown here.
_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Payment received</title></head>
<body>
<h1>Payment received</h1>
<p>Thank you. The shop confirms your booking as soon as it has verified the payment.</p>
<p>You can close this page and return to the shop.</p>
</body>
</html>
"""


@get("/return", roles=PUBLIC, media_type=MediaType.HTML)
async def payment_returned() -> str:
    """The default `return_url`: where a provider sends the buyer's browser after paying
    when the shop named no return URL of its own. Public, static HTML."""
    return _PAGE
