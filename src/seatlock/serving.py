"""The event loop the service's workers run on: uvloop, accepting new connections in
batches.

libuv, under uvloop, accepts one connection per turn of the event loop (since libuv 1.45:
"don't accept() connections in a loop"). A worker busy with a sale takes tens of
milliseconds per turn, so when an on-sale opens and thousands of buyers connect at once,
they wait in the kernel's accept queue for seconds before the service reads a byte of
their requests: with 256 new connections wrk measured a p99 of 3 s on `GET /health/live`.
Here the listening socket is watched by the loop and up to `ACCEPT_BATCH` connections are
accepted per turn, as asyncio's own loop does (with a larger batch). The batch is small
so that workers sharing one listening socket each take a share of a burst.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

import uvloop

logger = logging.getLogger(__name__)

# What uvicorn is given as its loop (`--loop`): the factory below.
UVICORN_LOOP = "seatlock.serving:new_event_loop"
# Workers share one listening socket and all wake when it is ready. With 32, one of two
# workers took all of wrk's 64 new connections; with 8 they split them evenly.
ACCEPT_BATCH = 8
# How long accepting pauses when the process is out of file descriptors.
OUT_OF_FILES_PAUSE_SECONDS = 1.0
ProtocolFactory = Callable[[], asyncio.BaseProtocol]


class BatchAcceptor:
    """A listening socket whose new connections are handed to the loop's transports, up to
    ACCEPT_BATCH per turn; what uvicorn needs of a server (`sockets`, `close`,
    `wait_closed`)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, sock: socket.socket, factory: ProtocolFactory
    ) -> None:
        self._loop, self._sock, self._factory = loop, sock, factory
        self._opening: set[asyncio.Task[Any]] = set()
        self._closed = False
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), self._accept_ready)

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return () if self._closed else (self._sock,)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # As asyncio's servers do: closing the server closes its listening socket.
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()

    async def wait_closed(self) -> None:
        if self._opening:
            await asyncio.gather(*self._opening, return_exceptions=True)

    def _accept_ready(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                self._pause(exc)
                return
            self._open(conn)

    def _open(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        opening = self._loop.create_task(self._loop.connect_accepted_socket(self._factory, conn))
        self._opening.add(opening)
        opening.add_done_callback(self._opened)

    def _opened(self, opening: asyncio.Task[Any]) -> None:
        self._opening.discard(opening)
        if not opening.cancelled() and opening.exception() is not None:
            logger.warning("a new connection could not be opened: %s", opening.exception())

    def _pause(self, exc: OSError) -> None:
        """Out of file descriptors (or another accept error): the connections wait in the
        kernel's queue a moment rather than the loop spinning on them."""
        logger.error("accepting connections failed, pausing: %s", exc)
        self._loop.remove_reader(self._sock.fileno())
        self._loop.call_later(OUT_OF_FILES_PAUSE_SECONDS, self._resume)

    def _resume(self) -> None:
        if not self._closed:
            self._loop.add_reader(self._sock.fileno(), self._accept_ready)


class BatchAcceptLoop(uvloop.Loop):
    """uvloop, whose plain TCP servers accept in batches (see the module's docstring)."""

    async def create_server(
        self,
        protocol_factory: ProtocolFactory,
        host: Any = None,
        port: Any = None,
        *,
        sock: socket.socket | None = None,
        backlog: int = 100,
        ssl: Any = None,
        **options: Any,
    ) -> Any:
        if ssl is not None or options or (sock is None and not isinstance(host, str)):
            return await super().create_server(
                protocol_factory, host, port, sock=sock, backlog=backlog, ssl=ssl, **options
            )
        if sock is None:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.create_server((host, port or 0), family=family, backlog=backlog)
        else:
            sock.listen(backlog)
        return BatchAcceptor(self, sock, protocol_factory)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The loop factory uvicorn is given (UVICORN_LOOP)."""
    return BatchAcceptLoop()
