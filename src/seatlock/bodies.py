"""Constrained types shared by request bodies and query parameters."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar.params import KwargDefinition, QueryParameter

# Control characters, and (in _BLANK) whitespace too, spelled out rather than `\s`, which
# Python and the JavaScript of API clients read differently.
_CONTROL = r"\x00-\x1f\x7f-\x9f"
_BLANK = r"\x00-\x20\x7f-\xa0\u1680\u2000-\u200b\u2028\u2029\u202f\u205f\u3000\ufeff"
_EMAIL_PART = rf"[^@{_BLANK}]"
# The end of the text for Python's `re` (which the server's checks use) and for JSON
# Schema's ECMA 262 patterns (which clients use) alike: Python's `$` alone also matches
# before a final newline, so "ABC\n" would pass for "^[A-Z]{3}$" on the server only.
END = r"$(?![\s\S])"
Email = Annotated[
    str,
    msgspec.Meta(
        min_length=3,
        max_length=254,
        pattern=rf"^{_EMAIL_PART}+@{_EMAIL_PART}+\.{_EMAIL_PART}+{END}",
        description="An email address",
    ),
]
Password = Annotated[str, msgspec.Meta(min_length=12, max_length=128)]
# Something visible, at least.
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=120, pattern=rf"[^{_BLANK}]")]


def search_text(max_length: int) -> KwargDefinition:
    """A query parameter of text to search for: no control character (PostgreSQL cannot
    store a NUL, and no one searches for the others) is refused with 400, like any other
    invalid parameter."""
    return QueryParameter(min_length=1, max_length=max_length, pattern=rf"^[^{_CONTROL}]+{END}")


class Body(msgspec.Struct, forbid_unknown_fields=True):
    """Base of request bodies: unknown fields are refused, never ignored."""
