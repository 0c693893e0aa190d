"""The load client as separate processes: each runs its share of the buyers on uvloop with
its own keep-alive connections, and reports its figures and its CPU time at the end.

They open their connections first and start together on a signal; five times a second
they add up the seats sold and pass on the end of the sale (time limit, sold out, or a
read that saw every seat sold), and every few seconds they send progress counts to the
parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.queues
import queue
import resource
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event as ProcessEvent
from typing import Any

import uvloop

from bench import buyers, crowd
from bench.recorder import Recorder
from bench.steps import Buyer, Sale, design
from bench.wire import Connection
from seatlock.heap import freeze_startup_objects, space_young_collections

# Connections a client process opens at once before the start.
OPENING = 64
# How often a client process samples how late its event loop runs.
LAG_PROBE_SECONDS = 0.01


@dataclass(frozen=True)
class Plan:
    """One client process's part of a run."""

    number: int
    scenario: str
    mode: str
    service_url: str
    # The contended step's own server, where it has one.
    contended_url: str | None
    sale: Sale
    buyers: list[tuple[int, dict[str, str]]]
    duration: float
    knobs: crowd.Knobs = field(default_factory=crowd.Knobs)
    progress_seconds: float = 5.0


Message = tuple[str, int, Any]  # ("ready" | "progress" | "done" | "failed", process, data)


@dataclass(frozen=True)
class Signals:
    """What the processes share: messages to the parent, the start signal and time
    (time.monotonic(), one clock for the machine), the end of the sale, seats sold."""

    messages: multiprocessing.queues.Queue[Message]
    go: ProcessEvent
    over: ProcessEvent
    start_at: Synchronized[float]
    sold: Synchronized[int]


def _counts(recorder: Recorder) -> dict[str, int]:
    return {
        "attempts": len(recorder.contended),
        "won": recorder.contended_won,
        "checkouts": len(recorder.checkouts),
        "seats": recorder.seats_sold,
        "conflicts": sum(recorder.conflicts.values()),
        "errors": sum(recorder.errors.values()),
    }


async def _open(people: list[Buyer]) -> None:
    gate = asyncio.Semaphore(OPENING)

    async def one(conn: Connection) -> None:
        async with gate:
            with contextlib.suppress(OSError):
                await conn.open()

    conns = [c for b in people for c in (b.service, b.contended) if c is not None]
    await asyncio.gather(*(one(c) for c in conns))


async def _watch(plan: Plan, signals: Signals, over: asyncio.Event, recorder: Recorder) -> None:
    """Share seats sold and the end of the sale between processes (`over` is set here at
    the time limit, or by a buyer whose read saw every seat sold); send progress counts.
    Runs until cancelled."""
    deadline = signals.start_at.value + plan.duration
    next_progress = time.monotonic() + plan.progress_seconds
    counted = 0
    while True:
        sold, counted = recorder.seats_sold - counted, recorder.seats_sold
        with signals.sold.get_lock():
            signals.sold.value += sold
            sold_out = signals.sold.value >= len(plan.sale.seats)
        if sold_out or over.is_set() or time.monotonic() >= deadline:
            signals.over.set()
        if signals.over.is_set():
            over.set()
        if time.monotonic() >= next_progress:
            signals.messages.put(("progress", plan.number, (_counts(recorder), recorder.now())))
            next_progress += plan.progress_seconds
        await asyncio.sleep(0.2)


async def _probe_lag(recorder: Recorder) -> None:
    """How late this process's loop runs a timer that is due: a reply that arrives while
    the loop is busy with other buyers waits as long before it is timed. Runs until
    cancelled."""
    while True:
        due = time.monotonic() + LAG_PROBE_SECONDS
        await asyncio.sleep(LAG_PROBE_SECONDS)
        recorder.loop_lag((time.monotonic() - due) * 1000)


async def _client(plan: Plan, signals: Signals) -> None:
    people = [
        Buyer(
            index,
            headers,
            Connection(plan.service_url),
            Connection(plan.contended_url) if plan.contended_url else None,
        )
        for index, headers in plan.buyers
    ]
    await _open(people)
    # Every latency is measured in this loop: no full collection walks the set-up's objects.
    freeze_startup_objects()
    space_young_collections()
    signals.messages.put(("ready", plan.number, None))
    await asyncio.to_thread(signals.go.wait)
    recorder = Recorder(started=signals.start_at.value)
    await asyncio.sleep(max(0.0, signals.start_at.value - time.monotonic()))
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    over = asyncio.Event()
    watchers = [
        asyncio.create_task(_watch(plan, signals, over, recorder)),
        asyncio.create_task(_probe_lag(recorder)),
    ]
    chosen = design(plan.mode, plan.sale.event_id)
    if plan.scenario == "flash":
        await crowd.run(people, plan.sale, chosen, recorder, over, plan.knobs)
    else:
        await buyers.run(people, plan.sale, chosen, recorder, over)
    finished = recorder.now()
    # Not `over`: buyers of one process running out of seats to try does not end the
    # sale for the others.
    for watcher in watchers:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    spent = cpu.ru_utime + cpu.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime
    signals.messages.put(("done", plan.number, (recorder.dump(), spent, finished)))
    for b in people:
        for conn in (b.service, b.contended):
            if conn is not None:
                conn.close()


def client_main(plan: Plan, signals: Signals) -> None:
    """A client process's entry point. A failure is reported, so that the parent stops
    instead of waiting for figures that will never come."""
    try:
        uvloop.run(_client(plan, signals))
    except Exception:
        signals.messages.put(("failed", plan.number, traceback.format_exc()))


@dataclass
class Outcome:
    recorder: Recorder
    cpu_seconds: float  # all client processes together
    elapsed: float  # until the last buyer stopped
    started: float


def _message(messages: multiprocessing.queues.Queue[Message], timeout: float) -> Message:
    try:
        got = messages.get(timeout=timeout)
    except queue.Empty:
        raise RuntimeError(f"no word from the client processes in {timeout:.0f} s") from None
    if got[0] == "failed":
        raise RuntimeError(f"client process {got[1]} failed:\n{got[2]}")
    return got


async def run_clients(
    plans: list[Plan],
    on_start: Callable[[], Awaitable[None]],
    on_progress: Callable[[Counter[str], float], None],
) -> Outcome:
    """Run every plan in a process of its own; `on_start` runs just before they start."""
    context = multiprocessing.get_context("spawn")
    signals = Signals(
        context.Queue(),
        context.Event(),
        context.Event(),
        context.Value("d", 0.0),
        context.Value("i", 0),
    )
    processes = [context.Process(target=client_main, args=(p, signals)) for p in plans]
    for process in processes:
        process.start()
    try:
        return await _conduct(plans, signals, on_start, on_progress)
    finally:
        signals.over.set()
        for process in processes:
            await asyncio.to_thread(process.join, 30)
            if process.is_alive():
                process.kill()


async def _conduct(
    plans: list[Plan],
    signals: Signals,
    on_start: Callable[[], Awaitable[None]],
    on_progress: Callable[[Counter[str], float], None],
) -> Outcome:
    for _ in plans:
        await asyncio.to_thread(_message, signals.messages, 300)
    await on_start()
    signals.start_at.value = time.monotonic() + 0.05
    signals.go.set()
    merged = Recorder(started=signals.start_at.value)
    latest: dict[int, Counter[str]] = {}
    cpu, elapsed, done = 0.0, 0.0, 0
    patience = max(p.duration for p in plans) + 120
    while done < len(plans):
        kind, sender, payload = await asyncio.to_thread(_message, signals.messages, patience)
        if kind == "progress":
            counts, at = payload
            latest[sender] = Counter(counts)
            # One line per round, once every running process has sent its counts.
            if len(latest) >= len(plans) - done:
                on_progress(sum(latest.values(), Counter(_counts(merged))), at)
                latest.clear()
        elif kind == "done":
            dump, spent, finished = payload
            merged.merge(dump)
            cpu, elapsed, done = cpu + spent, max(elapsed, finished), done + 1
    return Outcome(merged, cpu, elapsed, signals.start_at.value)
