"""Access tokens (signed JWTs) and refresh tokens (opaque random values stored as hashes)."""

from __future__ import annotations

import hashlib
import secrets
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
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm=settings.jwt_algorithm)


def read_access_token(settings: Settings, token: str) -> Principal:
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
        return Principal(
            id=uuid.UUID(claims["sub"]), role=Role(claims["role"]), email=claims["email"]
        )
    except (jwt.PyJWTError, ValueError, KeyError) as exc:
        raise Unauthorized("the access token is not valid") from exc


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    # A fast hash is right here: the token carries 256 random bits, unlike a password.
    return hashlib.sha256(token.encode()).hexdigest()
