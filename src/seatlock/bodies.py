"""Constrained types shared by request bodies."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

import msgspec
from litestar.params import QueryParameter

# No whitespace and no control characters anywhere, spelled out rather than `\s`, which
# Python and the JavaScript of API clients read differently.
_BLANK = r"\x00-\x20\x7f-\xa0\u1680\u2000-\u200b\u2028\u2029\u202f\u205f\u3000\ufeff"
_EMAIL_PART = rf"[^@{_BLANK}]"
Email = Annotated[
    str,
    msgspec.Meta(
        min_length=3,
        max_length=254,
        pattern=rf"^{_EMAIL_PART}+@{_EMAIL_PART}+\.{_EMAIL_PART}+$",
        description="An email address",
    ),
]
Password = Annotated[str, msgspec.Meta(min_length=12, max_length=128)]
# Something visible, at least.
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=120, pattern=rf"[^{_BLANK}]")]

# Where an offset-paged listing may start: far past any real listing, and within
# PostgreSQL's bigint, which an unbounded integer overflows.
MAX_OFFSET = 1_000_000
Offset = Annotated[int, QueryParameter(ge=0, le=MAX_OFFSET)]


class Body(msgspec.Struct, forbid_unknown_fields=True):
    """Base of request bodies: unknown fields are refused, never ignored."""


Item = TypeVar("Item")


class OffsetPage(msgspec.Struct, Generic[Item]):
    """One page of a listing that is paged by offset, with the total it is a page of."""

    items: list[Item]
    total: int
    limit: int
    offset: int
