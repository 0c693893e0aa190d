"""Single-route load with wrk (Debian's `wrk`), driven by a Lua script of this folder
(bench/wrk_claims.lua by default): a C client that does not cap the route it measures, as a
Python client on the same cores would.

The Lua script prints one `WRK_JSON {...}` line; wrk's CPU time is what this process's
children used meanwhile (wrk is the only one that ends during a phase). A script whose
threads end their work themselves prints a `WRK_THREAD_DONE` line per thread: wrk is
interrupted once every thread did, instead of waiting out its duration.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from bench.cpu import Meter

FOLDER = Path(__file__).parent
CLAIMS_SCRIPT = FOLDER / "wrk_claims.lua"
CLAIM_MODES = ("cycle", "contend")
MARKER = "WRK_JSON "
THREAD_DONE = "WRK_THREAD_DONE"


@dataclass(frozen=True)
class Load:
    mode: str  # the script's BENCH_WRK_MODE: wrk_claims.lua trivial | cycle | contend
    url: str
    connections: int
    # wrk's duration: at most this long when the script's threads end on their own
    seconds: float
    threads: int = 2
    env: Mapping[str, str] = field(default_factory=dict)
    files: tuple[str, ...] = ()
    script: Path = CLAIMS_SCRIPT


def executable() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is not installed: apt-get update && apt-get install -y wrk")
    return found


def owner(headers: Mapping[str, str]) -> str:
    """The account id of a buyer's bearer token: its subject (read here, not verified)."""
    token = headers["Authorization"].removeprefix("Bearer ")
    subject: str = jwt.decode(token, options={"verify_signature": False})["sub"]
    return subject


def write_buyers(folder: Path, people: list[dict[str, str]], name: str = "buyers.txt") -> str:
    """A "token owner-id" line per buyer; the script releases a claim with its owner's
    token."""
    lines = [f"{h['Authorization'].removeprefix('Bearer ')} {owner(h)}" for h in people]
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def write_seats(folder: Path, seat_ids: list[str], name: str = "seats.txt") -> str:
    path = folder / name
    path.write_text("\n".join(seat_ids) + "\n")
    return str(path)


def _children_seconds() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _figures(raw: dict[str, Any], load: Load) -> dict[str, Any]:
    # A script whose threads end their work themselves times that work: wrk's own duration
    # also counts its start and its interruption.
    seconds = raw.get("span_us", raw["duration_us"]) / 1e6
    counts = raw["counts"]
    latency = {
        k: round(v / 1000, 2) if v is not None else None for k, v in raw["latency_us"].items()
    }
    figures = {
        "mode": load.mode,
        "connections": load.connections,
        "threads": load.threads,
        "seconds": round(seconds, 2),
        "requests": raw["requests"],
        "requests_per_s": round(raw["requests"] / seconds, 1),
        "latency_ms": latency,
        "socket_errors": raw["errors"],
        "counts": counts,
    }
    if load.mode in CLAIM_MODES:
        figures["claims_per_s"] = round(counts.get("claims", 0) / seconds, 1)
        figures["won_per_s"] = round(counts.get("won", 0) / seconds, 1)
    return figures


def combined(phases: list[dict[str, Any]]) -> dict[str, Any]:
    """Phases of one load taken in turns, as one: their requests over their time, their
    counts added up, each process's CPU share weighted by its phase's time. Percentiles
    cannot be merged from wrk's summaries: each latency figure is the highest of the
    phases' (the highest p99 of the turns, for instance)."""
    seconds = sum(p["seconds"] for p in phases)
    requests = sum(p["requests"] for p in phases)

    def added(name: str) -> dict[str, Any]:
        # A script counts some answers (a status seen) only in the phases that had them.
        kinds = {k: None for p in phases for k in p[name]}
        return {k: sum(p[name].get(k, 0) for p in phases) for k in kinds}

    def highest(k: str) -> float | None:
        values = [v for p in phases if (v := p["latency_ms"][k]) is not None]
        return max(values) if values else None

    figures = {
        **{k: phases[0][k] for k in ("mode", "connections", "threads")},
        "seconds": round(seconds, 2),
        "requests": requests,
        "requests_per_s": round(requests / seconds, 1),
        "latency_ms": {k: highest(k) for k in phases[0]["latency_ms"]},
        "socket_errors": added("socket_errors"),
        "counts": added("counts"),
        "cpu_share": {
            k: round(sum(p["cpu_share"][k] * p["seconds"] for p in phases) / seconds, 3)
            for k in phases[0]["cpu_share"]
        },
    }
    for rate, count in (("claims_per_s", "claims"), ("won_per_s", "won")):
        if rate in phases[0]:
            figures[rate] = round(figures["counts"].get(count, 0) / seconds, 1)
    return figures


def _wrk(command: list[str], env: Mapping[str, str], threads: int) -> list[str]:
    """wrk's output lines, interrupting it once every thread said its work was done."""
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        assert process.stdout is not None
        lines, finished = [], 0
        for line in process.stdout:
            lines.append(line)
            if line.startswith(THREAD_DONE):
                finished += 1
                if finished == threads:
                    process.send_signal(signal.SIGINT)
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, command, "".join(lines))
    return lines


def run(load: Load, roots: Mapping[str, int]) -> dict[str, Any]:
    """One wrk phase; its figures, with every process tree's CPU share meanwhile."""
    command = [
        executable(),
        f"-t{load.threads}",
        f"-c{load.connections}",
        f"-d{load.seconds:g}s",
        "--timeout=30s",
        f"-s{load.script}",
        load.url,
        "--",
        *load.files,
    ]
    env = {
        **os.environ,
        "LUA_PATH": f"{FOLDER}/?.lua;;",
        "BENCH_WRK_MODE": load.mode,
        "BENCH_WRK_THREADS": str(load.threads),
        **load.env,
    }
    meter = Meter(roots)
    meter.start()
    before, started = _children_seconds(), time.monotonic()
    lines = _wrk(command, env, load.threads)
    wall = time.monotonic() - started
    cpu = meter.stop(wall, _children_seconds() - before)
    line = next((x for x in lines if x.startswith(MARKER)), None)
    if line is None:
        raise RuntimeError("wrk printed no figures:\n" + "".join(lines))
    return {**_figures(json.loads(line.removeprefix(MARKER)), load), "cpu_share": cpu}
