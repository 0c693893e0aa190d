"""Event images: recognised by content, size-limited, stored safely, served cacheably."""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from seatlock.events import images
from seatlock.events.images import LocalImageStore, sniff
from seatlock.models import Event, Role
from tests.clients import Client, ClientWith, UserFactory, assert_problem
from tests.events.eventdata import create_event

MAX_BYTES = 4096


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png() -> bytes:
    """A complete 1x1 grey PNG."""
    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00\x80"))
        + _png_chunk(b"IEND", b"")
    )


def jpeg() -> bytes:
    """A JFIF header and end marker: what identifies a JPEG."""
    app0 = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    return b"\xff\xd8\xff\xe0" + struct.pack(">H", len(app0) + 2) + app0 + b"\xff\xd9"


def webp() -> bytes:
    """A RIFF container holding a lossless 1x1 WebP bitstream header."""
    vp8l = b"\x2f\x00\x00\x00\x00" + b"\x00" * 4
    chunk = b"VP8L" + struct.pack("<I", len(vp8l)) + vp8l
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    return tmp_path / "images"


@pytest.fixture
async def client(client_with: ClientWith, image_dir: Path) -> AsyncIterator[Client]:
    """The app with its images in a directory of this test and a small size limit."""
    async with client_with(image_dir=str(image_dir), max_image_bytes=MAX_BYTES) as client:
        yield client


@pytest.fixture
async def event_and_owner(
    client: Client, make_user: UserFactory
) -> tuple[dict[str, Any], dict[str, str]]:
    owner = await make_user(Role.ORGANIZER)
    return await create_event(client, owner), owner


async def _upload(
    client: Client,
    event: dict[str, Any],
    headers: dict[str, str],
    name: str,
    content: bytes,
    content_type: str = "application/octet-stream",
) -> Any:
    return await client.post(
        f"/api/events/{event['id']}/image",
        files={"file": (name, content, content_type)},
        headers=headers,
    )


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_the_store_directory_is_created_on_start(image_dir: Path, client: Client) -> None:
    assert image_dir.is_dir()
    assert _files(image_dir) == []


@pytest.mark.parametrize(
    ("make", "media_type", "extension"),
    [(png, "image/png", "png"), (jpeg, "image/jpeg", "jpg"), (webp, "image/webp", "webp")],
)
async def test_each_format_is_stored_and_served(
    client: Client,
    event_and_owner: tuple[dict[str, Any], dict[str, str]],
    image_dir: Path,
    make: Any,
    media_type: str,
    extension: str,
) -> None:
    event, owner = event_and_owner
    content = make()
    response = await _upload(client, event, owner, f"poster.{extension}", content, media_type)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["media_type"] == media_type
    assert body["size"] == len(content)
    assert response.headers["location"] == body["image_url"]
    detail = (await client.get(f"/api/events/{event['id']}", headers=owner)).json()
    assert detail["image_url"] == body["image_url"]
    served = await client.get(body["image_url"])
    assert served.status_code == 200
    assert served.content == content
    assert served.headers["content-type"] == media_type
    assert served.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert _files(image_dir) == [body["image_url"].rsplit("/", 1)[1]]


async def test_a_png_named_jpg_is_taken_for_a_png(
    client: Client, event_and_owner: tuple[dict[str, Any], dict[str, str]]
) -> None:
    event, owner = event_and_owner
    response = await _upload(client, event, owner, "photo.jpg", png(), "image/jpeg")
    assert response.status_code == 201
    assert response.json()["media_type"] == "image/png"
    assert response.json()["image_url"].endswith(".png")
    served = await client.get(response.json()["image_url"])
    assert served.headers["content-type"] == "image/png"


REFUSED: dict[str, tuple[str, bytes, str]] = {
    "text named png": ("poster.png", b"just some text, honestly\n" * 4, "image/png"),
    "html named jpg": ("x.jpg", b"<html><script>alert(1)</script></html>", "image/jpeg"),
    "empty file": ("empty.png", b"", "image/png"),
    "gif": ("anim.gif", b"GIF89a" + b"\x00" * 32, "image/gif"),
    "svg": ("logo.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"),
    "truncated png signature": ("p.png", png()[:5], "image/png"),
    "riff that is not webp": ("a.webp", b"RIFF\x04\x00\x00\x00WAVE", "image/webp"),
}


@pytest.mark.parametrize(("name", "content", "content_type"), REFUSED.values(), ids=REFUSED.keys())
async def test_files_that_are_not_images_are_refused_and_leave_nothing(
    client: Client,
    event_and_owner: tuple[dict[str, Any], dict[str, str]],
    image_dir: Path,
    name: str,
    content: bytes,
    content_type: str,
) -> None:
    event, owner = event_and_owner
    response = await _upload(client, event, owner, name, content, content_type)
    assert_problem(response, 422)
    assert "not a JPEG, PNG or WebP image" in response.json()["detail"]
    assert _files(image_dir) == []
    detail = (await client.get(f"/api/events/{event['id']}", headers=owner)).json()
    assert detail["image_url"] is None


async def test_oversized_files_are_refused_and_leave_nothing(
    client: Client, event_and_owner: tuple[dict[str, Any], dict[str, str]], image_dir: Path
) -> None:
    event, owner = event_and_owner
    just_over = png() + b"\x00" * (MAX_BYTES - len(png()) + 1)
    response = await _upload(client, event, owner, "big.png", just_over, "image/png")
    assert_problem(response, 413)
    # Far over the limit: the body is refused before it is read.
    huge = png() + b"\x00" * (MAX_BYTES * 100)
    assert_problem(await _upload(client, event, owner, "huge.png", huge, "image/png"), 413)
    assert _files(image_dir) == []
    at_limit = png() + b"\x00" * (MAX_BYTES - len(png()))
    assert (await _upload(client, event, owner, "ok.png", at_limit)).status_code == 201


async def test_the_client_file_name_never_reaches_the_disk(
    client: Client,
    event_and_owner: tuple[dict[str, Any], dict[str, str]],
    image_dir: Path,
    tmp_path: Path,
) -> None:
    event, owner = event_and_owner
    for name in ("../../escape.png", "/etc/passwd", "..\\..\\win.png", "a/../../b.png"):
        response = await _upload(client, event, owner, name, png(), "image/png")
        assert response.status_code == 201, name
        assert ".." not in response.json()["image_url"]
    # Only the latest image remains; nothing was written anywhere else.
    assert len(_files(image_dir)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]


async def test_image_urls_outside_the_store_are_refused(client: Client) -> None:
    # A slash, even encoded, leaves the route; any other name not of the stored form is
    # refused by the route; a name of that form with no image under it is not found.
    for path in ("..%2F..%2Fetc%2Fpasswd", "%2e%2e%2fsettings.py", ".."):
        assert_problem(await client.get(f"/api/images/{path}"), 404)
    for name in ("passwd", "x.png", f"{'0' * 32}-{'0' * 16}.gif"):
        body = assert_problem(await client.get(f"/api/images/{name}"), 400, "validation")
        assert [(e["source"], e["field"]) for e in body["errors"]] == [("path", "key")]
    assert_problem(await client.get(f"/api/images/{'0' * 32}-{'0' * 16}.png"), 404)


async def test_a_new_image_replaces_the_old_one(
    client: Client, event_and_owner: tuple[dict[str, Any], dict[str, str]], image_dir: Path
) -> None:
    event, owner = event_and_owner
    first = (await _upload(client, event, owner, "a.png", png())).json()["image_url"]
    second = (await _upload(client, event, owner, "b.jpg", jpeg())).json()["image_url"]
    assert first != second
    assert_problem(await client.get(first), 404)
    assert (await client.get(second)).status_code == 200
    assert _files(image_dir) == [second.rsplit("/", 1)[1]]


async def test_deleting_the_event_deletes_its_image(
    client: Client,
    event_and_owner: tuple[dict[str, Any], dict[str, str]],
    make_user: UserFactory,
    image_dir: Path,
) -> None:
    event, owner = event_and_owner
    url = (await _upload(client, event, owner, "a.png", png())).json()["image_url"]
    admin = await make_user(Role.ADMIN)
    assert (await client.delete(f"/api/events/{event['id']}", headers=admin)).status_code == 204
    assert_problem(await client.get(url), 404)
    assert _files(image_dir) == []


async def test_a_cancelled_event_takes_no_new_image(
    client: Client, event_and_owner: tuple[dict[str, Any], dict[str, str]], image_dir: Path
) -> None:
    event, owner = event_and_owner
    cancelled = await client.patch(
        f"/api/events/{event['id']}", json={"status": "cancelled"}, headers=owner
    )
    assert cancelled.status_code == 200
    assert_problem(await _upload(client, event, owner, "a.png", png()), 409)
    assert _files(image_dir) == []


async def test_an_upload_without_a_file_is_refused(
    client: Client, event_and_owner: tuple[dict[str, Any], dict[str, str]]
) -> None:
    event, owner = event_and_owner
    url = f"/api/events/{event['id']}/image"
    assert_problem(await client.post(url, data={"file": "text"}, headers=owner), 400)
    assert_problem(await client.post(url, json={"file": "x"}, headers=owner), 400)


def test_sniffing_reads_signatures_only() -> None:
    assert sniff(png()) == images.PNG
    assert sniff(jpeg()) == images.JPEG
    assert sniff(webp()) == images.WEBP
    assert sniff(b"\xff\xd8") is None
    assert sniff(b"RIFF\x00\x00\x00\x00WEB") is None


async def test_a_failed_write_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalImageStore(tmp_path / "store")

    def broken_replace(*args: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        await store.save("0" * 32 + "-" + "0" * 16 + ".png", png())
    assert _files(tmp_path / "store") == []


async def test_a_failed_commit_removes_the_stored_file(
    client: Client,
    event_and_owner: tuple[dict[str, Any], dict[str, str]],
    engine: AsyncEngine,
    tmp_path: Path,
) -> None:
    event_data, _ = event_and_owner
    store = LocalImageStore(tmp_path / "other")
    async with async_sessionmaker(engine)() as session:
        event = await session.get(Event, event_data["id"])
        assert event is not None

        async def failing_commit() -> None:
            raise RuntimeError("connection lost")

        session.commit = failing_commit  # type: ignore[method-assign]
        with pytest.raises(RuntimeError, match="connection lost"):
            await images.set_event_image(session, event, png(), store, MAX_BYTES)
    assert _files(tmp_path / "other") == []
