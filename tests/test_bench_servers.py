"""A benchmark's servers go with it: stopped with a SIGTERM (`kill`, a CI's timeout), a
program inside `embedded_backends` stops its service, Valkey and PostgreSQL and removes
their state before it exits."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

# Records the state directory the servers get, starts them and the service, says where
# they are, and waits to be stopped.
PROGRAM = """
import tempfile, time
from seatlock.testing.servers import app_server, embedded_backends

made = tempfile.mkdtemp
def recorded(*args, **kwargs):
    global state
    state = made(*args, **kwargs)
    return state
tempfile.mkdtemp = recorded

with embedded_backends() as backends, app_server("seatlock.app:create_app", backends, 1) as url:
    print(state, backends.database_url, backends.redis_url, url, flush=True)
    time.sleep(600)
"""


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_a_benchmark_stopped_with_sigterm_leaves_no_server_behind(tmp_path: Path) -> None:
    log = tmp_path / "program.log"
    with (
        log.open("w") as stderr,
        subprocess.Popen(
            [sys.executable, "-c", PROGRAM], stdout=subprocess.PIPE, stderr=stderr, text=True
        ) as program,
    ):
        try:
            assert program.stdout is not None
            state, *urls = program.stdout.readline().split()
            assert urls, log.read_text()
            ports = [urlsplit(url).port for url in urls]
            assert all(port is not None and _port_open(port) for port in ports)

            program.send_signal(signal.SIGTERM)
            status = program.wait(timeout=120)
        finally:
            program.kill()

    assert status == 128 + signal.SIGTERM, log.read_text()
    assert [port for port in ports if port is not None and _port_open(port)] == []
    assert not Path(state).exists()
