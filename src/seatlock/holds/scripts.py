"""The Lua scripts of the hold layer, shipped as package data (see `seatlock.resources`).

Each is registered once (redis-py's EVALSHA with a reload on NOSCRIPT) and loaded eagerly
at start-up, so that a broken script stops the boot instead of failing the first buyer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, TypeVar

from redis.commands.core import AsyncScript

from seatlock.ops.metrics import TimedScript
from seatlock.redis_client import REDIS_DOWN, RedisClient
from seatlock.script_batches import ScriptBatches
from seatlock.script_sources import script_source

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


logger = logging.getLogger("seatlock")


@dataclass(frozen=True)
class Scripts:
    hold: AsyncScript
    extend: AsyncScript
    release: AsyncScript
    claim: AsyncScript
    unclaim: AsyncScript
    complete: AsyncScript
    mark_taken: AsyncScript
    free_taken: AsyncScript
    load_taken: AsyncScript
    list_holds: AsyncScript
    held_seats: AsyncScript
    load_layout: AsyncScript
    best_available: AsyncScript
    sweep_expired: AsyncScript
    availability: AsyncScript
    hold_report: AsyncScript


ScriptSet = TypeVar("ScriptSet", bound="DataclassInstance")


def register(
    redis: RedisClient, kind: type[ScriptSet], batches: ScriptBatches | None = None
) -> ScriptSet:
    """One script per field of `kind`, each from the file of the field's name; with
    `batches`, the calls of one turn of the event loop go out together."""
    # What redis-py's register_script makes (each call routed by its first key on a
    # cluster), with every call timed under the script's name.
    return kind(
        **{f.name: TimedScript(f.name, redis, script_source(f.name), batches) for f in fields(kind)}
    )


def register_scripts(redis: RedisClient, batches: ScriptBatches | None = None) -> Scripts:
    return register(redis, Scripts, batches)


async def load_scripts(redis: RedisClient, scripts: DataclassInstance) -> None:
    """Load every script into Redis now. A script Redis cannot compile raises here.

    With Redis unreachable the service still starts (only holds need Redis); the scripts
    are then loaded on first use.
    """
    try:
        for f in fields(scripts):
            script: AsyncScript = getattr(scripts, f.name)
            script.sha = await redis.script_load(script.script)
    except REDIS_DOWN:
        logger.warning("Redis unreachable at start-up: scripts will load on first use")
