"""Every Redis key Seatlock uses is built here, and nowhere else.

Keys of an event carry the hash tag `{<event_id>}` so that all of them live on one
Redis Cluster slot and one script can touch them atomically.
"""

from __future__ import annotations

import functools
import hashlib
import uuid


def _digest(value: str) -> str:
    # Emails and addresses are hashed so that keys never carry personal data.
    return hashlib.sha256(value.encode()).hexdigest()[:32]


# Sign-in failures (hashes of count and last failure), one per account, client address,
# and pair of both.


def login_failures_for_account(email: str) -> str:
    return f"seatlock:login:account:{_digest(email)}"


def login_failures_for_address(address: str) -> str:
    return f"seatlock:login:address:{_digest(address)}"


def login_failures_for_account_address(email: str, address: str) -> str:
    pair = f"{email}\n{address}"
    return f"seatlock:login:pair:{_digest(pair)}"


# Rate limits: the `limits` library puts this prefix, the subject below, the limit's
# count and period together into a key.
RATE_LIMIT_PREFIX = "seatlock:rate"


def rate_limited(route: str, per: str, value: str) -> str:
    """The subject of a rate limit: a route's requests per account or per address."""
    return f"{route}/{per}/{_digest(value) if per == 'address' else value}"


# Stream: one entry per account change (the account and its token generation, role and
# status), kept while older tokens live.
ACCOUNT_CHANGES = "seatlock:account-changes"


# A hold builds eight keys of its event and a release ten: the prefix of the events a worker is
# selling is made once, not from the UUID's text for every key.
@functools.lru_cache(maxsize=4096)
def _event(event_id: uuid.UUID) -> str:
    # The braces make `{<event_id>}` the hash tag: every key of an event maps to one slot.
    return f"seatlock:{{{event_id}}}"


def held_seats(event_id: uuid.UUID) -> str:
    """Hash: seat id -> id of the hold on it."""
    return f"{_event(event_id)}:held"


def taken_seats(event_id: uuid.UUID) -> str:
    """Hash: seat id -> 'reserved' | 'sold', a cache of PostgreSQL's seat states."""
    return f"{_event(event_id)}:taken"


def event_holds(event_id: uuid.UUID) -> str:
    """Sorted set: hold id -> expiry in ms, every hold of the event."""
    return f"{_event(event_id)}:holds"


def hold_seats(event_id: uuid.UUID) -> str:
    """Hash: hold id -> its seats, comma-separated; kept until the hold is released, booked
    or expired by the sweep, so that an expired hold's seats can be freed and announced.
    Field __expired__ counts the event's holds that ran out."""
    return f"{_event(event_id)}:hold-seats"


def seat_version(event_id: uuid.UUID) -> str:
    """String: the event's availability version, one more with every change of seats."""
    return f"{_event(event_id)}:version"


def seat_changes(event_id: uuid.UUID) -> str:
    """Stream: one entry per change of seat states, with id '<version>-0' and fields state,
    cause and seats (comma-separated)."""
    return f"{_event(event_id)}:changes"


def owner_holds(event_id: uuid.UUID, owner_id: uuid.UUID) -> str:
    """Sorted set: hold id -> expiry in ms, one owner's holds of the event."""
    return f"{_event(event_id)}:owner:{owner_id}"


def hold_prefix(event_id: uuid.UUID) -> str:
    return f"{_event(event_id)}:hold:"


def hold(event_id: uuid.UUID, hold_id: str) -> str:
    """Hash: one hold's owner, seats, expiry, deadline, extensions and state."""
    return hold_prefix(event_id) + hold_id


def released_hold(event_id: uuid.UUID, hold_id: str) -> str:
    """String: '<token>|<seats>' of the call that released the hold, kept a minute
    (RELEASED_KEPT_MS in release.lua) so that the same call sent again gets its answer."""
    return f"{hold(event_id, hold_id)}:released"


def layout(event_id: uuid.UUID) -> str:
    """Hash: row number -> the row's seats ('number,seat id,category;...' in seat order),
    'section:<n>' -> the row's section, 'range:<section>' -> 'first,last' row numbers."""
    return f"{_event(event_id)}:layout"


def seat_rows(event_id: uuid.UUID) -> str:
    """Hash: seat id -> the number of its row in the layout."""
    return f"{_event(event_id)}:seat-rows"


def open_rows(event_id: uuid.UUID) -> str:
    """Sorted set: row number -> row number, every row that may have a free seat."""
    return f"{_event(event_id)}:open-rows"


def reopen_rows(event_id: uuid.UUID) -> str:
    """Sorted set: row number -> when (ms) a hold on that full row runs out."""
    return f"{_event(event_id)}:reopen-rows"


# An event's waiting room (`seatlock.queue`).


def queue_waiting(event_id: uuid.UUID) -> str:
    """Sorted set: account id -> place, the buyers waiting to be let in, first place first.
    Places of those who joined before the sale started are drawn at random; later ones
    follow in order of arrival after all of them."""
    return f"{_event(event_id)}:queue:waiting"


def queue_admitted(event_id: uuid.UUID) -> str:
    """Sorted set: account id -> when (ms) the account's pass runs out; shopping until then."""
    return f"{_event(event_id)}:queue:admitted"


def queue_passes(event_id: uuid.UUID) -> str:
    """Hash: account id -> the number of its pass (the n-th buyer let in)."""
    return f"{_event(event_id)}:queue:passes"


def queue_given_up(event_id: uuid.UUID) -> str:
    """Sorted set: number of a pass given up by leaving -> when (ms) the pass would run out."""
    return f"{_event(event_id)}:queue:given-up"


def queue_recent(event_id: uuid.UUID) -> str:
    """Sorted set: number of a pass -> when (ms) it was given, over the last minute."""
    return f"{_event(event_id)}:queue:recent"


def queue_state(event_id: uuid.UUID) -> str:
    """Hash: the admission step's clock and credit, the count let in, the arrival counter."""
    return f"{_event(event_id)}:queue:state"
