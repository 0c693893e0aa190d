"""What the adapters share: where a provider's API is called."""

from __future__ import annotations

import httpx
import pytest

from seatlock.payments.providers.base import ProviderApi


@pytest.mark.parametrize("base_url", ["https://pay.test/api/v2", "https://pay.test/api/v2/"])
@pytest.mark.parametrize(
    ("path", "url"),
    [
        ("epayment/lookup/", "https://pay.test/api/v2/epayment/lookup/"),
        (
            "../merchant-transaction/t%3A1/refund/",
            "https://pay.test/api/merchant-transaction/t%3A1/refund/",
        ),
    ],
)
async def test_paths_are_below_the_base_url_with_or_without_its_slash(
    base_url: str, path: str, url: str
) -> None:
    async with httpx.AsyncClient() as http:
        api = ProviderApi(http, "Pay", base_url, timeout=1.0)

        assert api.url(path) == httpx.URL(url)
