"""The service's event loop (seatlock.serving): a burst of new connections is accepted
several per turn of a busy loop, where plain uvloop takes one per turn."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import pytest
import uvloop

from seatlock import serving

BURST = 100
TURNS = 20


class Counted(asyncio.Protocol):
    """Keeps each transport it is given, in its class's list."""

    made: list[asyncio.BaseTransport]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made.append(transport)


def counted() -> tuple[type[Counted], list[asyncio.BaseTransport]]:
    made: list[asyncio.BaseTransport] = []
    return type("Protocol", (Counted,), {"made": made}), made


async def _close_all(made: list[asyncio.BaseTransport]) -> None:
    for transport in made:
        transport.close()
    await asyncio.sleep(0)


@contextmanager
def listening() -> Iterator[socket.socket]:
    sock = socket.create_server(("127.0.0.1", 0), backlog=BURST * 2)
    try:
        yield sock
    finally:
        sock.close()


def _connected_in_turns(
    new_loop: Callable[[], asyncio.AbstractEventLoop], turns: int
) -> tuple[int, bool]:
    """How many of a burst of connections, all waiting in the accept queue, a server on
    `new_loop` has taken after `turns` turns of a loop that runs a callback every turn;
    and whether the server still listens once closed."""
    protocol, made = counted()
    loop = new_loop()
    with ExitStack() as stack:
        sock = stack.enter_context(listening())
        server = loop.run_until_complete(loop.create_server(protocol, sock=sock))
        address = sock.getsockname()
        for _ in range(BURST):
            stack.enter_context(socket.create_connection(address))

        async def turn_over(count: int) -> None:
            for _ in range(count):
                await asyncio.sleep(0)

        loop.run_until_complete(turn_over(turns))
        taken = len(made)
        server.close()
        loop.run_until_complete(server.wait_closed())
        still_listening = bool(server.sockets)
        loop.run_until_complete(_close_all(made))
    loop.close()
    return taken, still_listening


def test_a_burst_is_accepted_several_connections_a_turn() -> None:
    turns_needed = -(-BURST // serving.ACCEPT_BATCH) + 2  # and a turn to open the last ones

    made, still_listening = _connected_in_turns(serving.new_event_loop, turns_needed)

    assert made == BURST
    assert still_listening is False


def test_control_plain_uvloop_accepts_one_connection_a_turn() -> None:
    made, _ = _connected_in_turns(uvloop.new_event_loop, TURNS)

    # One a turn, give or take the turns that starting and stopping the loop take.
    assert made < 2 * TURNS < BURST


def test_the_loop_serves_on_a_host_and_port_too() -> None:
    protocol, made = counted()
    loop = serving.new_event_loop()

    async def serve_one() -> None:
        server = await loop.create_server(protocol, "127.0.0.1", 0)
        host, port = server.sockets[0].getsockname()
        _, writer = await asyncio.open_connection(host, port)
        while not made:
            await asyncio.sleep(0)
        writer.close()
        await writer.wait_closed()
        await _close_all(made)
        server.close()
        await server.wait_closed()

    loop.run_until_complete(asyncio.wait_for(serve_one(), 10))
    loop.close()
    assert len(made) == 1


class OutOfFiles(socket.socket):
    """A listening socket whose accept fails as it does when no descriptor is left."""

    tries = 0

    def accept(self) -> tuple[socket.socket, object]:
        type(self).tries += 1
        raise OSError(errno.EMFILE, "Too many open files")


def test_out_of_descriptors_accepting_pauses_then_resumes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(serving, "OUT_OF_FILES_PAUSE_SECONDS", 0.2)
    protocol, _ = counted()
    loop = serving.new_event_loop()
    with OutOfFiles(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        server = serving.BatchAcceptor(loop, sock, protocol)
        with socket.create_connection(sock.getsockname()):
            # Paused after the first failure: the waiting connection is not retried on
            # every turn, only once the pause is over.
            loop.run_until_complete(asyncio.sleep(0.05))
            paused = OutOfFiles.tries
            loop.run_until_complete(asyncio.sleep(0.25))
            resumed = OutOfFiles.tries
        server.close()
    loop.close()

    assert paused == 1
    assert resumed == 2
