"""A lean HTTP/1.1 keep-alive client for the load clients: one connection per buyer, no
pool, no redirects, no cookies. httpx costs the client about as much CPU per request as a
small route costs the server; this leaves the two cores to the servers under test."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import msgspec

# Answers that never carry a body, whatever their headers say.
BODYLESS = (204, 304)
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class WireError(Exception):
    """The request got no complete answer: refused, reset, cut short or timed out."""


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    # Header names in lower case.
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return _decode(self.body)


class Connection:
    """One keep-alive connection to `base_url`, reopened when the server closed it."""

    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        url = urlsplit(base_url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._host_line = f"Host: {self.host}:{self.port}\r\n"

    async def open(self) -> None:
        self.close()
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        body = b"" if json is None else _encode(json)
        head = [f"{method} {path} HTTP/1.1\r\n", self._host_line]
        if json is not None:
            head.append(f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n")
        head += [f"{name}: {value}\r\n" for name, value in (headers or {}).items()]
        message = "".join([*head, "\r\n"]).encode() + body
        try:
            async with asyncio.timeout(self.timeout):
                return await self._exchange(message)
        except (
            OSError,
            EOFError,
            TimeoutError,
            ValueError,  # a status line or header that does not parse
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ) as exc:
            self.close()
            raise WireError(type(exc).__name__) from exc

    async def _exchange(self, message: bytes) -> Reply:
        reused = self._reader is not None and not self._reader.at_eof()
        if not reused:
            await self.open()
        try:
            return await self._send(message)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            # A kept-alive connection the server closed while idle answers nothing: the
            # request never reached the application, so sending it again is safe.
            partial = getattr(exc, "partial", b"")
            if not reused or partial:
                raise
            await self.open()
            return await self._send(message)

    async def _send(self, message: bytes) -> Reply:
        assert self._reader is not None
        assert self._writer is not None
        self._writer.write(message)
        status, fields = _head(await self._reader.readuntil(b"\r\n\r\n"))
        body = b""
        if status in BODYLESS:
            pass
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            body = await _chunks(self._reader)
        else:
            body = await self._reader.readexactly(int(fields.get("content-length", "0")))
        if fields.get("connection", "").lower() == "close":
            self.close()
        return Reply(status, body, fields)


def _head(raw: bytes) -> tuple[int, dict[str, str]]:
    status_line, *lines = raw.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    return int(status_line.split(" ", 2)[1]), fields


async def _chunks(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while size := int((await reader.readline()).split(b";")[0], 16):
        parts.append(await reader.readexactly(size))
        await reader.readline()
    # The empty line after the last chunk (no trailers are expected).
    await reader.readline()
    return b"".join(parts)
