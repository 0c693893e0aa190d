"""Everything handlers can ask for, provided in one place.

Handlers name a dependency by parameter name and mark it with one of the aliases below.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

from litestar import Request
from litestar.di import NamedDependency, Provide
from litestar.params import SkipValidation
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from seatlock.auth.access import provide_principal, provide_viewer, signed_in
from seatlock.auth.responses import client_address
from seatlock.auth.tokens import Principal
from seatlock.events.images import ImageStore
from seatlock.holds.on_sale import OnSaleCache
from seatlock.holds.store import HoldStore
from seatlock.models import PaymentMethod
from seatlock.payments.providers.base import PaymentProvider
from seatlock.queue.gate import QueueGate
from seatlock.rate_limits import RateLimits as RateLimitsType
from seatlock.redis_client import Breaker, RedisClient
from seatlock.settings import Settings as SettingsType

Settings: TypeAlias = NamedDependency[SettingsType]
DbEngine: TypeAlias = NamedDependency[AsyncEngine]
DbSession: TypeAlias = NamedDependency[AsyncSession]
# Litestar cannot validate a union of two client classes, nor a mapping of protocol
# instances, and need not: the app made both.
Redis: TypeAlias = NamedDependency[SkipValidation[RedisClient]]
Holds: TypeAlias = NamedDependency[HoldStore]
RedisBreaker: TypeAlias = NamedDependency[Breaker]
OnSale: TypeAlias = NamedDependency[OnSaleCache]
Providers: TypeAlias = NamedDependency[SkipValidation[Mapping[PaymentMethod, PaymentProvider]]]
Images: TypeAlias = NamedDependency[SkipValidation[ImageStore]]
RateLimits: TypeAlias = NamedDependency[SkipValidation[RateLimitsType]]
Queue: TypeAlias = NamedDependency[QueueGate]
Caller: TypeAlias = NamedDependency[Principal]
Viewer: TypeAlias = NamedDependency[Principal | None]

T = TypeVar("T")


@dataclass(frozen=True)
class HoldDesk:
    """What a hold request works with, provided as one dependency: Litestar resolves
    several dependencies of a handler in a task group, which costs the hot path more than
    the dependencies themselves."""

    caller: Principal
    holds: HoldStore
    on_sale: OnSaleCache
    rate_limits: RateLimitsType
    # The caller's address, for the rate limits.
    address: str
    queue: QueueGate


Desk: TypeAlias = NamedDependency[HoldDesk]


@dataclass(frozen=True)
class CheckoutDesk:
    """What a booking or a payment request works with, as one dependency, for the same
    reason as HoldDesk: the request's session, and the app's parts a checkout uses."""

    caller: Principal
    session: AsyncSession
    holds: HoldStore
    providers: Mapping[PaymentMethod, PaymentProvider]
    settings: SettingsType
    rate_limits: RateLimitsType
    redis_breaker: Breaker


# Not validated: a mapping of protocol instances, made by the app.
Checkout: TypeAlias = NamedDependency[SkipValidation[CheckoutDesk]]


@dataclass(frozen=True)
class ReadDesk:
    """What the public reads of events work with, as one dependency, for the same reason
    as HoldDesk: the request's session, the caller if signed in, and the holds with the
    breaker that lets reads go on without Redis."""

    session: AsyncSession
    viewer: Principal | None
    holds: HoldStore
    redis_breaker: Breaker


Reader: TypeAlias = NamedDependency[ReadDesk]


@dataclass(frozen=True)
class OwnDesk:
    """What a signed-in caller's reads of their own bookings, payments and account work
    with, as one dependency, for the same reason as HoldDesk."""

    caller: Principal
    session: AsyncSession


Own: TypeAlias = NamedDependency[OwnDesk]


@dataclass(frozen=True)
class AuthDesk:
    """What signing up, in and out and refreshing a token work with, as one dependency, for
    the same reason as HoldDesk: a sale's buyers sign in and refresh their tokens by the
    thousand."""

    session: AsyncSession
    settings: SettingsType
    redis: RedisClient
    rate_limits: RateLimitsType


# Not validated: a union of two client classes, made by the app.
Auth: TypeAlias = NamedDependency[SkipValidation[AuthDesk]]


@dataclass(frozen=True)
class RoomDesk:
    """What the waiting room's routes work with, as one dependency, for the same reason as
    HoldDesk. `viewer` is None on the public status route."""

    on_sale: OnSaleCache
    gate: QueueGate
    viewer: Principal | None

    @property
    def caller(self) -> Principal:
        """The signed-in caller, whom the guard of a signed-in route made sure of."""
        return signed_in(self.viewer)


Room: TypeAlias = NamedDependency[RoomDesk]


# Providers read the app's state through the request: a `state` parameter would have
# Litestar build a State object for every request.
def _state_value(name: str) -> Provide:
    def provide(request: Request[Any, Any, Any]) -> Any:
        return getattr(request.app.state, name)

    return Provide(provide, sync_to_thread=False)


def _with_session(make: Callable[[Request[Any, Any, Any], AsyncSession], T]) -> Provide:
    """A dependency made with the request's own session, opened here directly (not through
    a nested generator), so that it is closed on every path, errors included. The handler's
    domain calls decide when to commit."""

    async def provide(request: Request[Any, Any, Any]) -> AsyncIterator[T]:
        factory: async_sessionmaker[AsyncSession] = request.app.state.sessions
        async with factory() as session:
            yield make(request, session)

    return Provide(provide)


def _session(request: Request[Any, Any, Any], session: AsyncSession) -> AsyncSession:
    return session


def _checkout_desk(request: Request[Any, Any, Any], session: AsyncSession) -> CheckoutDesk:
    state = request.app.state
    return CheckoutDesk(
        provide_principal(request),
        session,
        state.holds,
        state.providers,
        state.settings,
        state.rate_limits,
        state.redis_breaker,
    )


def _read_desk(request: Request[Any, Any, Any], session: AsyncSession) -> ReadDesk:
    state = request.app.state
    return ReadDesk(session, provide_viewer(request), state.holds, state.redis_breaker)


def _own_desk(request: Request[Any, Any, Any], session: AsyncSession) -> OwnDesk:
    return OwnDesk(provide_principal(request), session)


def _auth_desk(request: Request[Any, Any, Any], session: AsyncSession) -> AuthDesk:
    state = request.app.state
    return AuthDesk(session, state.settings, state.redis, state.rate_limits)


def _room_desk(request: Request[Any, Any, Any]) -> RoomDesk:
    state = request.app.state
    return RoomDesk(state.on_sale, state.queue_gate, provide_viewer(request))


def _hold_desk(request: Request[Any, Any, Any]) -> HoldDesk:
    state = request.app.state
    return HoldDesk(
        provide_principal(request),
        state.holds,
        state.on_sale,
        state.rate_limits,
        client_address(request),
        state.queue_gate,
    )


def dependencies() -> dict[str, Provide]:
    return {
        "settings": _state_value("settings"),
        "db_engine": _state_value("engine"),
        "redis": _state_value("redis"),
        "holds": _state_value("holds"),
        "redis_breaker": _state_value("redis_breaker"),
        "on_sale": _state_value("on_sale"),
        "providers": _state_value("providers"),
        "image_store": _state_value("images"),
        "rate_limits": _state_value("rate_limits"),
        "queue_gate": _state_value("queue_gate"),
        "db_session": _with_session(_session),
        "principal": Provide(provide_principal, sync_to_thread=False),
        "hold_desk": Provide(_hold_desk, sync_to_thread=False),
        "checkout": _with_session(_checkout_desk),
        "reader": _with_session(_read_desk),
        "own": _with_session(_own_desk),
        "auth": _with_session(_auth_desk),
        "room": Provide(_room_desk, sync_to_thread=False),
        "viewer": Provide(provide_viewer, sync_to_thread=False),
    }
