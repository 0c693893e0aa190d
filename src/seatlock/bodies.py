"""Constrained types shared by request bodies."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

import msgspec

Email = Annotated[
    str,
    msgspec.Meta(
        min_length=3,
        max_length=254,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="An email address",
    ),
]
Password = Annotated[str, msgspec.Meta(min_length=12, max_length=128)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=120, pattern=r"\S")]


class Body(msgspec.Struct, forbid_unknown_fields=True):
    """Base of request bodies: unknown fields are refused, never ignored."""


Item = TypeVar("Item")


class OffsetPage(msgspec.Struct, Generic[Item]):
    """One page of a listing that is paged by offset, with the total it is a page of."""

    items: list[Item]
    total: int
    limit: int
    offset: int
