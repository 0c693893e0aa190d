"""What tests share besides fixtures: the client types, the user factory's type, the
secret and password the test accounts use, and the check of a problem answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient

TEST_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"
PASSWORD = "correct horse battery staple"
PROBLEM_MEDIA_TYPE = "application/problem+json"

Client = AsyncTestClient[Litestar]
UserFactory = Callable[..., Awaitable[dict[str, str]]]


class ClientWith(Protocol):
    """The `client_with` fixture: `async with client_with(max_body_bytes=512) as client:`
    opens a client of the app whose settings differ from the suite's by `changes`."""

    def __call__(self, **changes: Any) -> AbstractAsyncContextManager[Client]: ...


def assert_problem(
    response: httpx.Response, status: int, slug: str | None = None
) -> dict[str, Any]:
    """Asserts an RFC 9457 answer with this status (and type `/problems/<slug>` when a slug
    is given); returns its body. The messages name the request, since this module is not
    one whose asserts pytest rewrites."""
    asked = f"{response.request.method} {response.request.url}"
    assert response.status_code == status, f"{asked}: {response.status_code} {response.text}"
    media_type = response.headers.get("content-type")
    assert media_type == PROBLEM_MEDIA_TYPE, f"{asked}: {media_type}"
    body: dict[str, Any] = response.json()
    assert body["status"] == status, f"{asked}: {body}"
    for member in ("type", "title", "detail"):
        assert isinstance(body.get(member), str), f"{asked}: no {member} in {body}"
        assert body[member], f"{asked}: empty {member} in {body}"
    if slug is not None:
        assert body["type"] == f"/problems/{slug}", f"{asked}: {body['type']}"
    return body


# The test client always comes from one address; a request carrying this header comes
# from the address it names instead, for tests of what is counted per client address.
ADDRESS_HEADER = "x-test-client-address"


def from_addresses(app: Litestar) -> Litestar:
    """`app`, reading each request's client address from ADDRESS_HEADER when present."""
    handler = app.asgi_handler

    async def addressed(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == ADDRESS_HEADER.encode():
                    scope = {**scope, "client": (value.decode(), 50000)}
        await handler(scope, receive, send)

    app.asgi_handler = addressed
    return app


def at(address: str, headers: dict[str, str] | None = None) -> dict[str, str]:
    """Headers of a request from `address`."""
    return {**(headers or {}), ADDRESS_HEADER: address}
