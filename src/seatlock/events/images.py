"""Event images: recognised by their content and kept behind a small storage interface.

The file name and content type a client sends are ignored. The first bytes of the file
say what it is, and the service names the stored file itself, so a client's name such
as "../../etc/passwd" never reaches the file system.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from pathlib import Path
from typing import Final, NamedTuple, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from seatlock.errors import DomainError, InvalidInput, NotFound
from seatlock.models import Event


class ImageKind(NamedTuple):
    extension: str
    media_type: str


JPEG: Final = ImageKind("jpg", "image/jpeg")
PNG: Final = ImageKind("png", "image/png")
WEBP: Final = ImageKind("webp", "image/webp")
KINDS: Final = {kind.extension: kind for kind in (JPEG, PNG, WEBP)}

# The only names a stored image has: the event's id, a random part, the kind's extension.
KEY: Final = re.compile(r"[0-9a-f]{32}-[0-9a-f]{16}\.(?:jpg|png|webp)")
# The same, whole, as the image route states it (and refuses anything else).
KEY_PATTERN: Final = f"^{KEY.pattern}$"


class ImageTooLarge(DomainError):
    status = 413
    slug = "too-large"
    title = "The upload is too large"


def sniff(content: bytes) -> ImageKind | None:
    """The kind of image the bytes are, by their signature, or None."""
    if content.startswith(b"\xff\xd8\xff"):
        return JPEG
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if len(content) >= 12 and content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return WEBP
    return None


def media_type(key: str) -> str:
    return KINDS[key.rpartition(".")[2]].media_type


class ImageStore(Protocol):
    async def save(self, key: str, content: bytes) -> None: ...

    async def load(self, key: str) -> bytes:
        """The stored bytes; NotFound if there are none under `key`."""
        ...

    async def remove(self, key: str) -> None: ...


class LocalImageStore:
    """Images as files in one local directory, created along with the store."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root

    def _path(self, key: str) -> Path:
        if not KEY.fullmatch(key):
            raise NotFound("no such image")
        return self.root / key

    @staticmethod
    def _write(path: Path, content: bytes) -> None:
        partial = path.with_name(f".{path.name}.partial")
        try:
            partial.write_bytes(content)
            # Readers see the whole file or none of it, and a failure leaves nothing.
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)

    async def save(self, key: str, content: bytes) -> None:
        await asyncio.to_thread(self._write, self._path(key), content)

    async def load(self, key: str) -> bytes:
        try:
            return await asyncio.to_thread(self._path(key).read_bytes)
        except FileNotFoundError as exc:
            raise NotFound("no such image") from exc

    async def remove(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, missing_ok=True)


async def set_event_image(
    session: AsyncSession, event: Event, content: bytes, store: ImageStore, max_bytes: int
) -> str:
    """Stores `content` as the event's image, replacing the previous one; answers the key."""
    if len(content) > max_bytes:
        raise ImageTooLarge(f"file: an image is at most {max_bytes} bytes", field="file")
    kind = sniff(content)
    if kind is None:
        raise InvalidInput("file: not a JPEG, PNG or WebP image", field="file")
    # A new name for every upload lets clients cache an image URL for good.
    key = f"{event.id.hex}-{secrets.token_hex(8)}.{kind.extension}"
    await store.save(key, content)
    previous, event.image_key = event.image_key, key
    try:
        await session.commit()
    except BaseException:
        await store.remove(key)
        raise
    if previous is not None:
        await store.remove(previous)
    return key
