"""CPU used by each process of a run, read from /proc before and after the timed phase:
the service workers, the baseline app, PostgreSQL, Valkey and the load client itself.

A server is found by the port it listens on, then counted with every descendant: its own
time, the time of children it has reaped (PostgreSQL's backends come and go) and the time
of those still alive. The load client counts only its own process (its children are the
servers) plus what its client processes report.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

TICK = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


@dataclass(frozen=True)
class Stat:
    ppid: int
    own: int  # utime + stime, in clock ticks
    reaped: int  # cutime + cstime: children waited for


def stat(pid: int | str) -> Stat | None:
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: the fields start after the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return Stat(
        int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])
    )


def _pids() -> Iterator[int]:
    return (int(p.name) for p in PROC.iterdir() if p.name.isdigit())


LISTEN, ESTABLISHED = "0A", "01"


def _socket_inodes(port: int, state: str) -> set[str]:
    """The sockets in TCP `state` whose local port is `port`."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # local address is ADDR:PORT in hex.
            if fields[3] == state and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def _holders(inodes: set[str]) -> dict[int, int]:
    """The processes holding any of these sockets, with how many each holds."""
    wanted = {f"socket:[{inode}]" for inode in inodes}
    holders = {}
    for pid in _pids():
        try:
            links = {os.readlink(fd) for fd in (PROC / str(pid) / "fd").iterdir()}
        except OSError:
            continue
        if held := len(links & wanted):
            holders[pid] = held
    return holders


def listening_root(port: int) -> int | None:
    """The topmost process holding the socket that listens on `port`."""
    holders = _holders(_socket_inodes(port, LISTEN))
    for pid in holders:
        found = stat(pid)
        if found is not None and found.ppid not in holders:
            return pid
    return None


def connections_by_process(port: int) -> dict[int, int]:
    """How many open connections to `port` (its server's side) each process holds: how
    the operating system spread them over a server's workers."""
    return _holders(_socket_inodes(port, ESTABLISHED))


def tree_ticks(root: int) -> int:
    """CPU ticks of `root` and all its descendants, living or reaped."""
    stats = {pid: s for pid in _pids() if (s := stat(pid)) is not None}
    children: dict[int, list[int]] = {}
    for pid, s in stats.items():
        children.setdefault(s.ppid, []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += stats[pid].own + stats[pid].reaped
            todo += children.get(pid, [])
    return total


def own_ticks() -> int:
    """This process alone (all its threads), not the servers it started."""
    found = stat(os.getpid())
    return found.own if found else 0


def machine_ticks() -> tuple[int, int]:
    """(busy, total) ticks of the whole machine since boot."""
    values = [int(v) for v in (PROC / "stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


@dataclass
class Meter:
    """CPU seconds per named process tree over one timed phase."""

    roots: Mapping[str, int]
    before: dict[str, int] | None = None
    machine_before: tuple[int, int] = (0, 0)

    def start(self) -> None:
        self.before = self._read()
        self.machine_before = machine_ticks()

    def _read(self) -> dict[str, int]:
        ticks = {name: tree_ticks(pid) for name, pid in self.roots.items()}
        ticks["client (main process)"] = own_ticks()
        return ticks

    def stop(self, wall_seconds: float, client_seconds: float = 0.0) -> dict[str, float]:
        """Each tree's share of the machine (1.0 = every core busy), the load client's
        (this process plus `client_seconds` its client processes reported), everything
        else that ran meanwhile, and the machine's total."""
        assert self.before is not None
        after = self._read()
        capacity = wall_seconds * (os.cpu_count() or 1)
        seconds = {n: (after[n] - self.before[n]) / TICK for n in after}
        seconds["client"] = seconds.pop("client (main process)") + client_seconds
        busy, total = (a - b for a, b in zip(machine_ticks(), self.machine_before, strict=True))
        machine = busy / total if total else 0.0
        shares = {name: round(s / capacity, 3) for name, s in seconds.items()}
        shares["other"] = round(max(0.0, machine - sum(shares.values())), 3)
        shares["machine"] = round(machine, 3)
        return shares


def roots_by_url(urls: Mapping[str, str | None]) -> dict[str, int]:
    """Process tree roots by name, for the URLs whose port something here listens on."""
    ports = {name: port for name, url in urls.items() if url and (port := urlsplit(url).port)}
    return {name: pid for name, port in ports.items() if (pid := listening_root(port)) is not None}
