"""What tests share besides fixtures: the client type, the user factory's type, and the
secret and password the test accounts use."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from litestar import Litestar
from litestar.testing import AsyncTestClient

TEST_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"
PASSWORD = "correct horse battery staple"

Client = AsyncTestClient[Litestar]
UserFactory = Callable[..., Awaitable[dict[str, str]]]
