"""The Lua script calls that one turn of the event loop makes, sent to Redis together.

Under load a worker's requests call the hold layer's scripts many at a time. Sent one by
one, every call takes a connection from the pool (redis-py checks it over two turns of the
event loop), writes it, and wakes the worker for its answer alone; Redis too reads and
answers each one on its own. Gathered over one turn of the loop and sent as one pipeline
(without MULTI: each call is still one script, atomic on its own and unaware of the
others), they share a connection and a write, and their answers come back together.

A pipeline holds at most `MAX_CALLS` calls. In a run without a cap, the contended step at
64 connections ran slower than with calls sent one by one, its workers partly idle; most
likely because a worker can answer none of a pipeline's requests before the pipeline's
answers are in, where shorter pipelines let the worker and Redis work at once
(bench/RESULTS.md).

Each call gets its own answer or its own error. A script's error stays with its call;
NOSCRIPT (Redis lost its scripts) is answered by the script's own call, which loads it
again. A connection error or a timeout fails every call of the pipeline, as it would
have failed each of them alone. redis-py's retry resends the whole pipeline once, calls
already answered included, as it resends a lone call whose answer was lost: a hold, a
claim, an extension or a release sent again finds its own first run and answers as it did
(hold.lua, best_available.lua, claim.lua, extend.lua, release.lua), and the writes of seat
states (complete.lua, mark_taken.lua, free_taken.lua) log only what changed, so a second
run logs nothing. A caller that gives up leaves the other calls alone, and its own call is
dropped if its pipeline has not left yet.

Only a single server's calls are gathered. On a cluster they go one by one, as before: a
cluster pipeline would split them by node again, and was not measured.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

from seatlock.redis_client import RedisClient

# Measured on 2 cores, one run each: 8 and 4 both beat calls sent one by one on the hold
# route and the contended step, 8 a little ahead on the hold route (bench/RESULTS.md).
MAX_CALLS = 8


class Script(Protocol):
    """A registered script: its hash, and its call on its own connection."""

    sha: str

    async def call_alone(self, keys: Sequence[Any], args: Sequence[Any]) -> Any: ...


@dataclass(frozen=True)
class _Call:
    script: Script
    keys: Sequence[Any]
    args: Sequence[Any]
    answer: asyncio.Future[Any]


class ScriptBatches:
    """One per Redis client, shared by the scripts registered on it. `sent` learns how many
    calls each pipeline held (the service's metric)."""

    def __init__(self, redis: Redis, sent: Callable[[int], object]) -> None:
        self._redis = redis
        self._sent = sent
        # The calls of the pipeline whose task has not started yet: later calls of this
        # turn join it, up to MAX_CALLS.
        self._gathering: list[_Call] | None = None
        self._sending: set[asyncio.Task[None]] = set()

    def call(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> asyncio.Future[Any]:
        """The script's answer, once the pipeline it goes out with is answered."""
        loop = asyncio.get_running_loop()
        call = _Call(script, keys, args, loop.create_future())
        if self._gathering is not None and len(self._gathering) < MAX_CALLS:
            self._gathering.append(call)
            return call.answer
        # The pipeline's task starts on the next turn of the loop, with what gathered by
        # then: no turn is spent between the gathering and the sending.
        self._gathering = [call]
        task = loop.create_task(self._send(self._gathering))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)
        return call.answer

    async def aclose(self) -> None:
        """Waits for the pipelines under way, whose callers may have given up."""
        while self._sending:
            await asyncio.wait(list(self._sending))

    async def _send(self, gathered: list[_Call]) -> None:
        if self._gathering is gathered:
            self._gathering = None
        # A caller that gave up before its pipeline left has its call dropped, as a lone
        # call cancelled before it was written is never sent.
        calls = [call for call in gathered if not call.answer.done()]
        try:
            await self._answer(calls)
        finally:
            # Whatever stopped this task, no caller is left waiting: they get what a lost
            # connection gives (a 503). On every other path each answer is already given.
            for call in calls:
                if not call.answer.done():
                    lost = RedisConnectionError("the answers of the script calls were lost")
                    call.answer.set_exception(lost)

    async def _answer(self, calls: list[_Call]) -> None:
        if not calls:
            return
        self._sent(len(calls))
        if len(calls) == 1:
            await _answer_alone(calls[0])
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for call in calls:
                    pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
                replies = await pipe.execute(raise_on_error=False)
        except Exception as exc:
            for call in calls:
                _settle(call.answer, exc)
            return
        lost: list[_Call] = []
        for call, reply in zip(calls, replies, strict=True):
            if isinstance(reply, NoScriptError):
                lost.append(call)
            else:
                _settle(call.answer, reply)
        # The others' answers are in before the lost scripts are loaded again.
        for call in lost:
            await _answer_alone(call)


async def _answer_alone(call: _Call) -> None:
    try:
        reply = await call.script.call_alone(call.keys, call.args)
    except Exception as exc:
        _settle(call.answer, exc)
    else:
        _settle(call.answer, reply)


def _settle(answer: asyncio.Future[Any], reply: Any) -> None:
    """A reply for a caller still waiting; an exception is raised to it."""
    if answer.done():
        return
    if isinstance(reply, Exception):
        answer.set_exception(reply)
    else:
        answer.set_result(reply)


def script_batches(redis: RedisClient, sent: Callable[[int], object]) -> ScriptBatches | None:
    """The batches of a single server's client; none on a cluster."""
    return ScriptBatches(redis, sent) if isinstance(redis, Redis) else None
