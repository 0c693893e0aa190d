"""A started worker keeps what it holds out of the garbage collector's reach
(`seatlock.heap`). Run in a process of its own: freezing is for good, and the test suite's
own process starts apps with it off."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from seatlock.heap import YOUNG_ALLOCATIONS
from seatlock.settings import Settings

# Starts the app as a worker does (its lifespan), then says what the collector can reach.
WORKER = """
import asyncio, gc, json
from litestar.testing import AsyncTestClient
from seatlock.app import create_app

async def main():
    pythons_threshold = gc.get_threshold()[0]
    app = create_app()
    async with AsyncTestClient(app):
        print(json.dumps({
            "frozen": gc.get_freeze_count(),
            "tracked": len(gc.get_objects()),
            "app_reachable": any(o is app for o in gc.get_objects()),
            "young_threshold": gc.get_threshold()[0],
            "pythons_threshold": pythons_threshold,
        }))

asyncio.run(main())
"""


def _started_worker(settings: Settings, freeze: str) -> dict[str, int]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SEATLOCK_")},
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "SEATLOCK_DATA_DIR": settings.data_dir,
        # Like the suite's apps: no expiry sweep over the tests' shared database.
        "SEATLOCK_EXPIRY_INTERVAL_SECONDS": str(settings.expiry_interval_seconds),
        "SEATLOCK_GC_FREEZE": freeze,
    }
    done = subprocess.run(
        [sys.executable, "-c", WORKER], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    heap: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return heap


def test_a_started_worker_keeps_its_objects_out_of_the_collectors_reach(
    settings: Settings,
) -> None:
    heap = _started_worker(settings, "true")
    assert not heap["app_reachable"]
    # What start-up made (modules, app, routes: about 182,000 objects) is frozen; a full
    # collection walks the rest, a few hundred objects at this point. Five to one leaves
    # room for what another Python, platform or lifespan makes after the freeze.
    assert heap["frozen"] > 5 * heap["tracked"]
    assert heap["young_threshold"] == YOUNG_ALLOCATIONS


def test_with_the_freeze_off_the_collector_is_left_as_python_sets_it(settings: Settings) -> None:
    heap = _started_worker(settings, "false")
    assert heap["app_reachable"]
    assert heap["frozen"] == 0
    assert heap["young_threshold"] == heap["pythons_threshold"]
