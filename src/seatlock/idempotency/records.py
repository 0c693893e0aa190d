"""Idempotency keys: a retried request with the same key and body replays the stored
response instead of doing the work again. Keys are scoped per user and route, kept 24 h.

A key is claimed one of two ways, and neither can leave it stuck:
- without a lease, inside the transaction of the work it guards (a booking): the claim
  commits with the answer or not at all;
- with a lease, committed with the first transaction of work that calls a provider between
  transactions (a payment). Once the lease is over, a retry with the same key and body takes
  the key over and is told what the lapsed attempt made (`Claim.earlier`), to finish it.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    DateTime,
    Uuid,
    delete,
    select,
    text,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession

from seatlock.errors import Busy, DomainError, InvalidInput
from seatlock.models import IdempotencyRecord

KEEP_FOR = timedelta(hours=24)
MAX_KEY_LENGTH = 255
# Visible ASCII: what clients generate (UUIDs, random tokens), and what any proxy passes.
KEY_PATTERN = r"^[!-~]+$"


class MissingIdempotencyKey(DomainError):
    status = 400
    slug = "idempotency-key-required"
    title = "An Idempotency-Key header is required"


class MalformedIdempotencyKey(DomainError):
    status = 400
    slug = "idempotency-key-malformed"
    title = "The Idempotency-Key header is malformed"


class KeyInUse(Busy):
    slug = "idempotency-key-in-use"
    title = "A request with this Idempotency-Key is still being processed"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"a request with this Idempotency-Key is still being processed; retry in "
            f"{retry_after} s for its answer"
        )
        self.retry_after = retry_after


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
    # The lease this claim holds, None for a claim inside the work's own transaction. It
    # fences the claim's later writes: once a retry has taken the key over, they match
    # nothing.
    lease: datetime | None = None
    # What the attempt whose lease lapsed had made (see `remember`), for this one to finish.
    earlier: uuid.UUID | None = None


# One statement claims a new key, takes over a lapsed attempt (one that never answered and
# whose lease is over, or that had none: it died or gave up, and the same request may take
# over) or an expired record. The lease runs on PostgreSQL's clock (`clock_timestamp()`:
# the same for every process, and the statement's time rather than its transaction's).
# SQL text, since SQLAlchemy compiles its PostgreSQL INSERT ... ON CONFLICT anew on every
# execution (that construct is not cacheable): that cost a booking more CPU than all its
# other statements.
CLAIM = text(
    """
    INSERT INTO idempotency_records AS kept
        (user_id, route, key, request_hash, expires_at, locked_until)
    VALUES (:user_id, :route, :key, :digest, :expires_at,
            clock_timestamp() + CAST(:lease AS interval))
    ON CONFLICT (user_id, route, key) DO UPDATE SET
        request_hash = excluded.request_hash,
        expires_at = excluded.expires_at,
        locked_until = excluded.locked_until,
        response_status = NULL,
        response_body = NULL,
        response_media_type = NULL,
        resource_id = CASE WHEN kept.expires_at < :now THEN NULL ELSE kept.resource_id END
    WHERE kept.expires_at < :now
       OR (kept.response_status IS NULL
           AND kept.request_hash = excluded.request_hash
           AND (kept.locked_until IS NULL OR kept.locked_until < clock_timestamp()))
    RETURNING kept.locked_until, kept.resource_id
    """
).columns(locked_until=DateTime(timezone=True), resource_id=Uuid())


def _checked_key(key: str | None) -> str:
    if not key or not key.strip():
        raise MissingIdempotencyKey("send an Idempotency-Key header with this request")
    if len(key) > MAX_KEY_LENGTH or not re.fullmatch(KEY_PATTERN, key):
        raise MalformedIdempotencyKey(
            f"the Idempotency-Key must be visible ASCII and at most {MAX_KEY_LENGTH} characters"
        )
    return key


async def claim(
    session: AsyncSession,
    user_id: uuid.UUID,
    route: str,
    key: str | None,
    request: bytes,
    lease: timedelta | None = None,
) -> Claim | StoredResponse:
    """Claim a key for a new request inside the session's transaction, or return the stored
    response of an earlier one. Nothing is committed here. A concurrent request with the
    same key waits on the claimed row until this transaction ends; one that finds the key
    claimed under a live lease gets KeyInUse."""
    checked = _checked_key(key)
    digest = hashlib.sha256(request).hexdigest()
    now = datetime.now(UTC)
    claimed = (
        await session.execute(
            CLAIM,
            {
                "user_id": user_id,
                "route": route,
                "key": checked,
                "digest": digest,
                "now": now,
                "expires_at": now + KEEP_FOR,
                "lease": lease,
            },
        )
    ).one_or_none()
    if claimed is not None:
        return Claim(user_id, route, checked, claimed.locked_until, claimed.resource_id)
    record = await session.get(IdempotencyRecord, (user_id, route, checked), populate_existing=True)
    if record is None:  # removed by a concurrent purge: try again as new
        return await claim(session, user_id, route, key, request, lease)
    if record.request_hash != digest:
        raise InvalidInput("this Idempotency-Key was used with a different request")
    if record.response_status is None or record.response_body is None:
        raise KeyInUse(_seconds_until(record.locked_until))
    return StoredResponse(
        record.response_status, record.response_body, record.response_media_type or ""
    )


def _seconds_until(moment: datetime | None) -> int:
    left = (moment - datetime.now(UTC)).total_seconds() if moment else 0
    return max(1, math.ceil(left))


# STORE and RELEASE write the claim's record only as long as this request still holds it:
# no answer yet, and the lease it claimed (none, for a claim inside the work's
# transaction). Once a retry has taken the key over, the lease differs and they match
# nothing. SQL text, like CLAIM: these run in every booking and payment, and an ORM UPDATE
# costs them more CPU than PostgreSQL's work (its expressions built anew each time, then
# evaluated against the session's objects).
STORE = text(
    """
    UPDATE idempotency_records
    SET response_status = :status, response_body = :body, response_media_type = :media_type,
        locked_until = NULL
    WHERE user_id = :user_id AND route = :route AND key = :key AND response_status IS NULL
      AND locked_until IS NOT DISTINCT FROM :lease
    """
)
RELEASE = text(
    """
    UPDATE idempotency_records SET locked_until = clock_timestamp()
    WHERE user_id = :user_id AND route = :route AND key = :key AND response_status IS NULL
      AND locked_until IS NOT DISTINCT FROM :lease
    """
)
REMEMBER = text(
    "UPDATE idempotency_records SET resource_id = :resource_id "
    "WHERE user_id = :user_id AND route = :route AND key = :key"
)


def _key(claimed: Claim) -> dict[str, Any]:
    return {"user_id": claimed.user_id, "route": claimed.route, "key": claimed.key}


def _held(claimed: Claim) -> dict[str, Any]:
    return {**_key(claimed), "lease": claimed.lease}


async def remember(session: AsyncSession, claimed: Claim, resource_id: uuid.UUID) -> None:
    """Record, in the claim's transaction, what the work made before its outside call."""
    await session.execute(REMEMBER, {**_key(claimed), "resource_id": resource_id})


async def store(session: AsyncSession, claimed: Claim, response: StoredResponse) -> bool:
    """Record the answer of a claimed key, in the session's transaction. False when the
    claim is no longer this request's (a retry took it over): the caller rolls back."""
    answer = {"status": response.status, "body": response.body, "media_type": response.media_type}
    result = await session.execute(STORE, {**_held(claimed), **answer})
    return bool(getattr(result, "rowcount", 0))


async def release(session: AsyncSession, claimed: Claim) -> None:
    """Give up a leased claim whose request failed without an answer: the next retry takes
    the key over at once, and finishes or replaces what this attempt made."""
    await session.rollback()
    await session.execute(RELEASE, _held(claimed))
    await session.commit()


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
