"""The conditions a benchmark ran under, written beside its figures: the machine, the
versions of what was measured, and how busy the machine already was."""

from __future__ import annotations

import json
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any, cast

import redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

PACKAGES = (
    "litestar",
    "uvicorn",
    "granian",
    "redis",
    "hiredis",
    "sqlalchemy",
    "asyncpg",
    "msgspec",
)


def _first_line_with(path: str, prefix: str) -> str | None:
    try:
        with open(path) as lines:
            return next(
                (line.split(":", 1)[1].strip() for line in lines if line.startswith(prefix)), None
            )
    except OSError:
        return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _first_line_with("/proc/cpuinfo", "model name") or platform.processor(),
        "memory": _first_line_with("/proc/meminfo", "MemTotal"),
        "python": platform.python_version(),
        "system": platform.platform(),
        # Load before the run: anything above ~0 means something else was running.
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "packages": {p: v for p in PACKAGES if (v := _version(p)) is not None},
    }


async def server_versions(engine: AsyncEngine, redis_url: str | None) -> dict[str, str]:
    async with engine.connect() as conn:
        found = {"postgresql": str(await conn.scalar(text("SHOW server_version")))}
    if redis_url:
        client = redis.Redis.from_url(redis_url)
        try:
            info = cast(dict[str, Any], client.info("server"))
            found["valkey"] = str(info.get("valkey_version") or info.get("redis_version"))
        finally:
            client.close()
    return found


def save(result: dict[str, Any], path: str | None) -> None:
    """The whole result as JSON, when asked for (--json)."""
    if path:
        Path(path).write_text(json.dumps(result, indent=2))
