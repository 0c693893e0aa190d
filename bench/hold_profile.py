"""Where the CPU of the hold route goes, part by part, against the trivial route: the
profile behind `hold_vs_trivial.py`'s ratio.

    .venv/bin/python bench/hold_profile.py --duration 10 --workers 2

The same two routes as `hold_vs_trivial.py` (wrk, 64 connections: GET /health/live, then
hold + release), one phase each rather than alternating rounds, are run twice: once
measured (the service's CPU per request, from /proc), once under py-spy (`--nonblocking`,
every worker), whose samples are sorted into the parts below by the frames they pass
through. A part's milliseconds are its share of
the samples times the measured CPU per request.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import conditions, hold_vs_trivial, loadgen, wrk
from seatlock.testing.servers import Backends

# A sample belongs to the first part one of whose frames it passes through.
PARTS = (
    (
        "Redis client: script calls (redis-py, its pool and retry, the pipelines of calls)",
        ("TimedScript.__call__", "ScriptBatches._send ("),
    ),
    ("the handlers' own work", ("create_hold (", "release_hold (")),
    (
        "guard: load check, token, roles, JSON check (and Litestar's copy of the handler)",
        ("authorize_connection (",),
    ),
    ("request log line and HTTP metrics", ("RequestObserver._observe (",)),
    ("Litestar: body, parameters, dependencies, response", ("HTTPRoute.handle (",)),
)
REST = "server, middleware and event loop (uvicorn, HTTP parsing, ASGI wrappers)"
SAMPLE_RATE = 250


def parts_of(collapsed: str) -> dict[str, float]:
    """Each part's share of the samples of py-spy's raw (collapsed stacks) output."""
    counts: Counter[str] = Counter()
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        part = next((name for name, marks in PARTS if any(m in stack for m in marks)), REST)
        counts[part] += int(count)
    total = sum(counts.values()) or 1
    return {name: counts[name] / total for name, _ in (*PARTS, (REST, ()))}


def _profiled(load: wrk.Load, roots: dict[str, int], folder: Path) -> dict[str, float]:
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy is not installed: .venv/bin/pip install -e '.[bench]'")
    output = folder / f"{load.mode}.txt"
    command = [spy, "record", "--pid", str(roots["service"]), "--subprocesses", "--nonblocking"]
    command += ["--rate", str(SAMPLE_RATE), "--duration", f"{load.seconds:g}"]
    command += ["--format", "raw", "--output", str(output)]
    recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wrk.run(load, roots)
    recorder.wait()
    return parts_of(output.read_text())


def measure(base_url: str, backends: Backends, connections: int, seconds: float) -> dict[str, Any]:
    roots = loadgen.roots(base_url, backends)
    found: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="seatlock-profile-") as name:
        folder = Path(name)
        event_id, warm_up, (measured, profiled) = asyncio.run(
            hold_vs_trivial.files(base_url, backends, folder, rounds=2)
        )
        env = hold_vs_trivial.wrk_env(event_id)
        for route, mode in (("trivial", "trivial"), ("hold", "cycle")):
            url = f"{base_url}/health/live" if mode == "trivial" else base_url
            warm = wrk.Load(
                mode, url, connections, hold_vs_trivial.WARM_UP_SECONDS, 2, env, warm_up
            )
            wrk.run(warm, roots)
            load = wrk.Load(mode, url, connections, seconds, 2, env, measured)
            figures = wrk.run(load, roots)
            per_request = (
                figures["cpu_share"]["service"] * (os.cpu_count() or 1) / figures["requests_per_s"]
            )
            found[route] = {
                "requests_per_s": figures["requests_per_s"],
                "cpu_ms_per_request": round(1000 * per_request, 3),
                "parts": _profiled(replace(load, files=profiled), roots, folder),
            }
    return found


def markdown(found: dict[str, Any]) -> str:
    trivial, hold = found["trivial"], found["hold"]
    lines = [
        "| part | trivial route (ms) | hold + release (ms) |",
        "|---|---|---|",
    ]
    for name in hold["parts"]:
        cells = [f"{r['parts'][name] * r['cpu_ms_per_request']:.3f}" for r in (trivial, hold)]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    lines.append(
        f"| **service CPU per request** | {trivial['cpu_ms_per_request']} "
        f"| {hold['cpu_ms_per_request']} |"
    )
    budget = trivial["cpu_ms_per_request"] / hold_vs_trivial.TARGET_RATIO
    handlers = sum(hold["parts"][name] for name, _ in PARTS[:2]) * hold["cpu_ms_per_request"]
    lines.append(
        f"\nA hold may cost {budget:.3f} ms for the {hold_vs_trivial.TARGET_RATIO}x target; "
        f"without the Redis call and the handlers' work it would still cost "
        f"{hold['cpu_ms_per_request'] - handlers:.3f} ms."
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    wrk.executable()
    machine = conditions.machine()
    with loadgen.service(args.workers, "uvicorn") as (backends, url):
        found = measure(url, backends, args.connections, args.duration)
    print(markdown(found))
    conditions.save({**found, "config": vars(args), "machine": machine}, args.json_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
