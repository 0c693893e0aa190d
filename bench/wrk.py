"""Single-route load with wrk (Debian's `wrk`), driven by bench/wrk_claims.lua: a C client
that does not cap the route it measures, as a Python client on the same cores would.

The Lua script prints one `WRK_JSON {...}` line; wrk's CPU time is what this process's
children used meanwhile (wrk is the only one that ends during a phase).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from bench.cpu import Meter

SCRIPT = Path(__file__).with_name("wrk_claims.lua")
MARKER = "WRK_JSON "


@dataclass(frozen=True)
class Load:
    mode: str  # trivial | cycle | contend (see wrk_claims.lua)
    url: str
    connections: int
    seconds: float
    threads: int = 2
    env: Mapping[str, str] = field(default_factory=dict)
    files: tuple[str, ...] = ()


def executable() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is not installed: apt-get update && apt-get install -y wrk")
    return found


def write_buyers(folder: Path, people: list[dict[str, str]], name: str = "buyers.txt") -> str:
    """A "token owner-id" line per buyer; the script releases a claim with its owner's
    token. The owner id is the token's subject (read here, not verified)."""
    lines = []
    for headers in people:
        token = headers["Authorization"].removeprefix("Bearer ")
        owner = jwt.decode(token, options={"verify_signature": False})["sub"]
        lines.append(f"{token} {owner}")
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
    seconds = raw["duration_us"] / 1e6
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
    if load.mode != "trivial":
        figures["claims_per_s"] = round(counts.get("claims", 0) / seconds, 1)
        figures["won_per_s"] = round(counts.get("won", 0) / seconds, 1)
    return figures


def run(load: Load, roots: Mapping[str, int]) -> dict[str, Any]:
    """One wrk phase; its figures, with every process tree's CPU share meanwhile."""
    command = [
        executable(),
        f"-t{load.threads}",
        f"-c{load.connections}",
        f"-d{load.seconds:g}s",
        "--timeout=30s",
        f"-s{SCRIPT}",
        load.url,
        "--",
        *load.files,
    ]
    env = {**os.environ, "BENCH_WRK_MODE": load.mode, "BENCH_WRK_THREADS": str(load.threads)}
    meter = Meter(roots)
    meter.start()
    before, started = _children_seconds(), time.monotonic()
    done = subprocess.run(
        command, env={**env, **load.env}, capture_output=True, text=True, check=True
    )
    wall = time.monotonic() - started
    cpu = meter.stop(wall, _children_seconds() - before)
    line = next((x for x in done.stdout.splitlines() if x.startswith(MARKER)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no figures:\n{done.stdout}\n{done.stderr}")
    return {**_figures(json.loads(line.removeprefix(MARKER)), load), "cpu_share": cpu}
