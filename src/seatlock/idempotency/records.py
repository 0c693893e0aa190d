"""Idempotency keys: a retried request with the same key and body replays the stored
response instead of doing the work again. Keys are scoped per user and route, kept 24 h."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, delete, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from seatlock.errors import Conflict, DomainError, InvalidInput
from seatlock.models import IdempotencyRecord

KEEP_FOR = timedelta(hours=24)
MAX_KEY_LENGTH = 255


class MissingIdempotencyKey(DomainError):
    status = 400
    slug = "idempotency-key-required"
    title = "An Idempotency-Key header is required"


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: bytes
    media_type: str


@dataclass(frozen=True)
class Claim:
    user_id: uuid.UUID
    route: str
    key: str


def _checked_key(key: str | None) -> str:
    if not key or not key.strip():
        raise MissingIdempotencyKey("send an Idempotency-Key header with this request")
    if len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidInput(
            f"the Idempotency-Key must be printable and at most {MAX_KEY_LENGTH} characters"
        )
    return key


async def claim(
    session: AsyncSession, user_id: uuid.UUID, route: str, key: str | None, request: bytes
) -> Claim | StoredResponse:
    """Claim a key for a new request inside the session's transaction, or return the stored
    response of an earlier one. Nothing is committed: a claim made here lives and dies with
    the work it guards, so a crash or an outage never leaves the key stuck. A concurrent
    request with the same key waits on the claimed row until this transaction ends."""
    checked = Claim(user_id, route, _checked_key(key))
    digest = hashlib.sha256(request).hexdigest()
    now = datetime.now(UTC)
    fresh = {"request_hash": digest, "expires_at": now + KEEP_FOR}
    statement = insert(IdempotencyRecord).values(
        user_id=user_id, route=route, key=checked.key, **fresh
    )
    # One statement claims a new key or takes over an expired record of it.
    inserted = await session.scalar(
        statement.on_conflict_do_update(
            index_elements=["user_id", "route", "key"],
            set_={
                **fresh,
                "response_status": None,
                "response_body": None,
                "response_media_type": None,
            },
            where=IdempotencyRecord.expires_at < now,
        ).returning(IdempotencyRecord.key)
    )
    if inserted is not None:
        return checked
    record = await session.get(
        IdempotencyRecord, (user_id, route, checked.key), populate_existing=True
    )
    if record is None:  # removed by a concurrent abandon: try again as new
        return await claim(session, user_id, route, key, request)
    if record.request_hash != digest:
        raise InvalidInput("this Idempotency-Key was used with a different request")
    if record.response_status is None or record.response_body is None:
        raise Conflict("a request with this Idempotency-Key is still being processed")
    return StoredResponse(
        record.response_status, record.response_body, record.response_media_type or ""
    )


async def begin(
    session: AsyncSession, user_id: uuid.UUID, route: str, key: str | None, request: bytes
) -> Claim | StoredResponse:
    """Claim a key and commit the claim, for work that cannot share its transaction."""
    claimed = await claim(session, user_id, route, key, request)
    await session.commit()
    return claimed


async def store(session: AsyncSession, claimed: Claim, response: StoredResponse) -> None:
    """Record the answer of a claimed key, in the session's transaction."""
    await session.execute(
        update(IdempotencyRecord)
        .where(*_identifies(claimed))
        .values(
            response_status=response.status,
            response_body=response.body,
            response_media_type=response.media_type,
        )
    )


async def finish(session: AsyncSession, claimed: Claim, response: StoredResponse) -> None:
    await store(session, claimed, response)
    await session.commit()


async def abandon(session: AsyncSession, claimed: Claim) -> None:
    """Forget a claim whose request failed unexpectedly, so that a retry can run."""
    await session.rollback()
    await session.execute(delete(IdempotencyRecord).where(*_identifies(claimed)))
    await session.commit()


def _identifies(claimed: Claim) -> list[ColumnElement[bool]]:
    return [
        IdempotencyRecord.user_id == claimed.user_id,
        IdempotencyRecord.route == claimed.route,
        IdempotencyRecord.key == claimed.key,
    ]


async def purge_expired(session: AsyncSession, batch: int = 1000) -> int:
    """Delete up to `batch` records past their 24 hours; returns how many went."""
    expired = (
        select(IdempotencyRecord.user_id, IdempotencyRecord.route, IdempotencyRecord.key)
        .where(IdempotencyRecord.expires_at < datetime.now(UTC))
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        delete(IdempotencyRecord).where(
            tuple_(IdempotencyRecord.user_id, IdempotencyRecord.route, IdempotencyRecord.key).in_(
                expired
            )
        )
    )
    await session.commit()
    return int(getattr(result, "rowcount", 0) or 0)
