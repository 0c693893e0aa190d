"""One way every listing pages: `limit` and an opaque `cursor` in the query, a `Page` in
the answer, with the cursor and the link of the next page.

A cursor is where the next page starts, in whatever terms its listing reads cheapest: a
keyset position (a start time or creation time and an id) for the tables, a rank for the
lists Redis keeps sorted. Clients only hand it back.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Generic, NamedTuple, TypeVar
from urllib.parse import urlencode

import msgspec
from litestar import Request
from litestar.params import KwargDefinition, QueryParameter

from seatlock.errors import InvalidInput

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def limit(maximum: int = MAX_LIMIT) -> KwargDefinition:
    """The `limit` query parameter of a listing whose pages hold at most `maximum` items."""
    return QueryParameter(ge=1, le=maximum, description="the most items the page holds")


Limit = Annotated[int, limit()]
Cursor = Annotated[
    str | None,
    QueryParameter(
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="where the page starts: the `next_cursor` of the page before; "
        "the first page without it",
    ),
]


class TimeAndId(NamedTuple):
    """A keyset position: a start or creation time, and the id that breaks its ties."""

    at: Annotated[datetime, msgspec.Meta(tz=True)]
    id: uuid.UUID


class Rank(NamedTuple):
    """A position in a list kept sorted: its rank (bounded far past any real list)."""

    rank: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]


Item = TypeVar("Item")
Row = TypeVar("Row")
Position = TypeVar("Position")


class Page(msgspec.Struct, Generic[Item]):
    """One page of a listing."""

    items: list[Item]
    limit: int
    # Null on the last page.
    next_cursor: str | None
    # The path and query of the next page (null on the last page).
    next: str | None
    # How many items the whole listing holds; null where counting would cost a scan.
    total: int | None


def encode_cursor(position: Any) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(position)).decode().rstrip("=")


def decode_cursor(cursor: str | None, kind: type[Position]) -> Position | None:
    """The position a cursor of this service names (None without a cursor)."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return msgspec.json.decode(raw, type=kind)
    except (binascii.Error, ValueError, msgspec.DecodeError) as exc:
        raise InvalidInput("cursor: not a cursor this service gave out", field="cursor") from exc


def rank_of(cursor: str | None) -> int:
    """The rank a page of a list paged by rank starts from (0 without a cursor)."""
    position = decode_cursor(cursor, Rank)
    return position.rank if position is not None else 0


def page(
    request: Request[Any, Any, Any],
    items: list[Item],
    limit: int,
    after: Any | None,
    total: int | None,
) -> Page[Item]:
    """The page of `items`; `after` is the position the next page starts after, None on
    the last page."""
    if after is None:
        return Page(items, limit, None, None, total)
    cursor = encode_cursor(after)
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
    link = f"{request.url.path}?{urlencode([*query, ('cursor', cursor)])}"
    return Page(items, limit, cursor, link, total)


def keyset(
    request: Request[Any, Any, Any],
    rows: list[Row],
    limit: int,
    total: int | None,
    position: Callable[[Row], Any],
    out: Callable[[Row], Item],
) -> Page[Item]:
    """The page of a listing paged by keyset: `rows` are the page's and, when more follow,
    one more; the next page starts after the `position` of the page's last row."""
    after = position(rows[limit - 1]) if len(rows) > limit else None
    return page(request, [out(row) for row in rows[:limit]], limit, after, total)


def by_rank(
    request: Request[Any, Any, Any], items: list[Item], limit: int, start: int, total: int
) -> Page[Item]:
    """The page of a list paged by rank: its `items` from rank `start`, of `total`."""
    end = start + limit
    return page(request, items, limit, Rank(end) if end < total else None, total)
