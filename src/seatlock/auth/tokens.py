"""Access tokens (signed JWTs) and refresh tokens (opaque random values stored as hashes)."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import msgspec

from seatlock.errors import Unauthorized
from seatlock.models import Role
from seatlock.settings import Settings

ACCESS_TOKEN_TYPE = "access"
REQUIRED_CLAIMS = ["sub", "role", "email", "iat", "exp", "iss", "aud", "jti", "typ"]


class Principal(msgspec.Struct, frozen=True):
    """Who is calling, as the access token says."""

    id: uuid.UUID
    role: Role
    email: str
    # The account's token generation at issue; a token of an older one is void.
    generation: int = 0
    # The refresh-token family (sign-in session) the token was issued to.
    session_id: uuid.UUID | None = None

    def may_see(self, owner_id: uuid.UUID) -> bool:
        """Whether the caller may see an object owned by `owner_id`: its owner or an admin.
        Callers report everything else exactly like a missing object."""
        return owner_id == self.id or self.role is Role.ADMIN


def issue_access_token(settings: Settings, principal: Principal) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": str(principal.id),
        "role": principal.role.value,
        "email": principal.email,
        "iat": now,
        "exp": now + timedelta(minutes=settings.access_token_minutes),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "jti": secrets.token_urlsafe(16),
        "typ": ACCESS_TOKEN_TYPE,
        "gen": principal.generation,
    }
    if principal.session_id is not None:
        claims["sid"] = str(principal.session_id)
    return jwt.encode(claims, settings.jwt_secret, algorithm=settings.jwt_algorithm)


# Access tokens this process verified, with their expiry: checking a JWT (base64, JSON,
# HMAC, claims) cost the hold path more than its Redis script, and a buyer sends the same
# token with every request. Keyed by the secret too, so another key never accepts it.
_verified: dict[tuple[str, str], tuple[Principal, float]] = {}
MAX_VERIFIED_TOKENS = 50_000


def read_access_token(settings: Settings, token: str) -> Principal:
    key = (settings.jwt_secret, token)
    known = _verified.get(key)
    if known is not None and known[1] > time.time():
        return known[0]
    principal, expires = _verify(settings, token)
    if len(_verified) >= MAX_VERIFIED_TOKENS:
        _verified.clear()
    _verified[key] = (principal, expires)
    return principal


def _verify(settings: Settings, token: str) -> tuple[Principal, float]:
    try:
        # The algorithm list is pinned: `none` and every other algorithm are refused.
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[settings.jwt_algorithm],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": REQUIRED_CLAIMS},
        )
        if claims["typ"] != ACCESS_TOKEN_TYPE:
            raise Unauthorized("not an access token")
        session_id = claims.get("sid")
        generation = claims.get("gen", 0)
        if not isinstance(generation, int):
            raise Unauthorized("the access token is not valid")
        principal = Principal(
            id=uuid.UUID(claims["sub"]),
            role=Role(claims["role"]),
            email=claims["email"],
            generation=generation,
            session_id=uuid.UUID(session_id) if session_id is not None else None,
        )
        return principal, float(claims["exp"])
    except (jwt.PyJWTError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise Unauthorized("the access token is not valid") from exc


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    # A fast hash is right here: the token carries 256 random bits, unlike a password.
    return hashlib.sha256(token.encode()).hexdigest()
