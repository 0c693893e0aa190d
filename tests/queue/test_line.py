"""The waiting line's scripts on a real Valkey (and a 3-node cluster): places, the pre-sale
shuffle, admission at a rate and within a cap by several processes at once, leaving."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis, RedisCluster

from seatlock import keys
from seatlock.holds.scripts import load_scripts
from seatlock.queue.line import STEP_MS, QueueLine
from seatlock.queue.passes import Passes
from seatlock.queue.rules import QueueRules
from seatlock.redis_client import RedisClient, hash_field, hash_fields
from seatlock.settings import Settings

# Long enough for a loaded two-core machine; waits end on the event, not on the time.
PATIENCE_SECONDS = 15.0


def _rules(
    admit_per_minute: int | None = None, max_shopping: int | None = None, pass_seconds: int = 600
) -> QueueRules:
    now = datetime.now(UTC)
    return QueueRules(
        event_id=uuid.uuid4(),
        opens_at=now - timedelta(hours=1),
        sale_starts_at=now - timedelta(minutes=1),
        sale_ends_at=now + timedelta(days=1),
        admit_per_minute=admit_per_minute,
        max_shopping=max_shopping,
        pass_seconds=pass_seconds,
        paused=False,
    )


def _before_the_start(rules: QueueRules) -> QueueRules:
    return replace(rules, sale_starts_at=datetime.now(UTC) + timedelta(hours=1))


async def _line(client: RedisClient) -> QueueLine:
    line = QueueLine(client)
    await load_scripts(client, line.scripts)
    return line


@pytest.fixture
async def line(redis: Redis) -> QueueLine:
    return await _line(redis)


@pytest.fixture
async def lines(settings: Settings) -> AsyncIterator[list[QueueLine]]:
    """Three processes' worth of lines, each on connections of its own."""
    clients = [Redis.from_url(settings.redis_url, decode_responses=True) for _ in range(3)]
    yield [await _line(client) for client in clients]
    for client in clients:
        await client.aclose()


async def _join_all(line: QueueLine, rules: QueueRules, passes: Passes, n: int) -> list[uuid.UUID]:
    accounts = [uuid.uuid4() for _ in range(n)]
    for account in accounts:
        drawn = passes.drawn_place(rules.event_id, account)
        await line.place(rules, account, drawn, join=True)
    return accounts


async def _step_due_now(line: QueueLine, rules: QueueRules) -> None:
    """Forgets when the last admission step ran, so that the next call steps at once."""
    await line.redis.execute_command("HDEL", keys.queue_state(rules.event_id), "stepped_at")


async def _admission_order(line: QueueLine, rules: QueueRules) -> list[str]:
    """Every waiting buyer let in at once; the accounts in the order of their pass numbers."""
    let_in = replace(rules, max_shopping=None, admit_per_minute=None)
    await line.admit(let_in)
    passes = await hash_fields(line.redis, keys.queue_passes(rules.event_id))
    return sorted(passes, key=lambda account: int(passes[account]))


async def test_joining_twice_keeps_the_place(line: QueueLine, settings: Settings) -> None:
    passes = Passes(settings)
    rules = _rules()
    first, second = uuid.uuid4(), uuid.uuid4()
    for joins, account in enumerate((first, second, first, second, first), start=1):
        place = await line.place(
            rules, account, passes.drawn_place(rules.event_id, account), join=True
        )
        assert place.state == "waiting"
        assert place.ahead == (0 if account == first else 1)
        assert place.waiting == min(joins, 2)
    looked = await line.place(rules, uuid.uuid4(), 0, join=False)
    assert looked.state == "absent"


async def test_places_drawn_before_the_start_are_shuffled_and_later_ones_first_come(
    line: QueueLine, settings: Settings
) -> None:
    passes = Passes(settings)
    rules = _rules()
    early = await _join_all(line, _before_the_start(rules), passes, 60)
    late = await _join_all(line, rules, passes, 20)
    # Leaving and joining again before the start draws the same place.
    again = early[0]
    await line.leave(rules.event_id, again)
    await line.place(
        _before_the_start(rules), again, passes.drawn_place(rules.event_id, again), join=True
    )

    order = [uuid.UUID(account) for account in await _admission_order(line, rules)]

    drawn = sorted(early, key=lambda account: passes.drawn_place(rules.event_id, account))
    assert order == drawn + late
    assert order[:60] != early
    assert abs(_rank_correlation(early, order[:60])) < 0.5


def _rank_correlation(joined: list[uuid.UUID], admitted: list[uuid.UUID]) -> float:
    """Spearman's rank correlation between join order and admission order."""
    n = len(joined)
    rank = {account: i for i, account in enumerate(admitted)}
    squares = sum((i - rank[account]) ** 2 for i, account in enumerate(joined))
    return 1 - 6 * squares / (n * (n * n - 1))


async def _step_together(lines: list[QueueLine], rules: QueueRules, seconds: float) -> list[int]:
    """Each line calls the admission step every 50 ms for `seconds`, as processes would."""

    async def process(line: QueueLine) -> int:
        let_in = 0
        ends = time.monotonic() + seconds
        while time.monotonic() < ends:
            let_in += await line.admit(rules)
            await asyncio.sleep(0.05)
        return let_in

    return list(await asyncio.gather(*(process(line) for line in lines)))


async def test_several_processes_keep_one_rate(
    line: QueueLine, lines: list[QueueLine], settings: Settings
) -> None:
    rules = _rules(admit_per_minute=600)
    await _join_all(line, rules, Passes(settings), 300)
    await line.admit(rules)
    state_key = keys.queue_state(rules.event_id)
    first_step = int(await hash_field(line.redis, state_key, "stepped_at") or 0)

    let_in = sum(await _step_together(lines, rules, 3.2)) + 10

    state = await hash_fields(line.redis, state_key)
    served, credit = int(state["served"]), float(state["credit"])
    elapsed_ms = int(state["stepped_at"]) - first_step + STEP_MS
    # Every buyer let in was earned by the time that passed between the steps, exactly.
    assert served + credit == pytest.approx(600 * elapsed_ms / 60_000, abs=1e-6)
    assert let_in == served
    assert 0 <= credit < 1
    assert served >= 30
    numbers = (await hash_fields(line.redis, keys.queue_passes(rules.event_id))).values()
    assert sorted(map(int, numbers)) == list(range(1, served + 1))
    assert (await line.figures(rules.event_id)).waiting == 300 - served


async def test_shoppers_never_exceed_the_cap(
    line: QueueLine, lines: list[QueueLine], settings: Settings
) -> None:
    # Passes of one second: slots free up all the time and are filled again at once.
    rules = _rules(max_shopping=5, pass_seconds=1)
    await _join_all(line, rules, Passes(settings), 200)
    peak = 0

    async def watch() -> None:
        nonlocal peak
        for _ in range(60):
            peak = max(peak, (await line.figures(rules.event_id)).shopping)
            await asyncio.sleep(0.05)

    stepped, _ = await asyncio.gather(_step_together(lines, rules, 3.2), watch())

    assert peak == 5
    served = (await line.figures(rules.event_id)).served
    assert sum(stepped) == served
    # Each second's passes ran out and their slots went to the next five.
    assert served >= 15


async def test_leaving_frees_the_slot_and_gives_up_the_pass(
    line: QueueLine, settings: Settings
) -> None:
    rules = _rules(max_shopping=1)
    first, second = await _join_all(line, rules, Passes(settings), 2)
    assert await line.admit(rules) == 1
    place = await line.place(rules, first, 0, join=False)
    assert place.state == "admitted"
    assert place.number == 1
    await _step_due_now(line, rules)
    assert await line.admit(rules) == 0

    assert await line.leave(rules.event_id, first) == "admitted"

    assert await line.given_up(rules.event_id, 1)
    assert (await line.place(rules, first, 0, join=False)).state == "absent"
    await _step_due_now(line, rules)
    assert await line.admit(rules) == 1
    assert (await line.place(rules, second, 0, join=False)).number == 2
    assert not await line.given_up(rules.event_id, 2)
    assert await line.leave(rules.event_id, first) == "absent"


async def test_a_paused_room_lets_nobody_in_and_saves_no_credit(
    line: QueueLine, settings: Settings
) -> None:
    rules = _rules(admit_per_minute=60)
    await _join_all(line, rules, Passes(settings), 10)
    state_key = keys.queue_state(rules.event_id)
    for _ in range(3):
        await _step_due_now(line, rules)
        assert await line.admit(replace(rules, paused=True)) == 0
        await asyncio.sleep(0.4)
    paused = await hash_fields(line.redis, state_key)
    assert float(paused["credit"]) == 0
    await asyncio.sleep(STEP_MS / 1000)

    let_in = await line.admit(rules)

    # The credit grew from the last paused step only, not over the paused time.
    state = await hash_fields(line.redis, state_key)
    elapsed_ms = int(state["stepped_at"]) - int(paused["stepped_at"])
    assert let_in + float(state["credit"]) == pytest.approx(60 * elapsed_ms / 60_000, abs=1e-6)
    assert let_in >= 1
    assert (await line.figures(rules.event_id)).waiting == 10 - let_in


async def test_a_pause_stops_steps_given_rules_read_before_it(
    line: QueueLine, settings: Settings
) -> None:
    # The admission loops read the rules from PostgreSQL every few seconds: until then
    # they step the room as unpaused, and the mark in Redis is what stops them.
    rules = _rules()
    await _join_all(line, rules, Passes(settings), 3)
    await line.mark_paused(rules.event_id, True)
    await _step_due_now(line, rules)
    while_paused = await line.admit(rules)
    await line.mark_paused(rules.event_id, False)
    await _step_due_now(line, rules)

    assert while_paused == 0
    assert await line.admit(rules) == 3


async def test_a_pass_runs_out_and_its_buyer_joins_again_at_the_back(
    line: QueueLine, settings: Settings
) -> None:
    rules = _rules(pass_seconds=1)
    [buyer] = await _join_all(line, rules, Passes(settings), 1)
    await line.admit(rules)
    await _join_all(line, rules, Passes(settings), 2)
    deadline = time.monotonic() + PATIENCE_SECONDS
    while (place := await line.place(rules, buyer, 0, join=False)).state == "admitted":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    assert place.state == "expired"

    again = await line.place(rules, buyer, 0, join=True)

    assert again.state == "waiting"
    assert again.ahead == 2


async def test_the_room_runs_on_a_cluster(cluster_url: str, settings: Settings) -> None:
    client = RedisCluster.from_url(cluster_url, decode_responses=True)
    try:
        line = await _line(client)
        rules = _rules(max_shopping=1)
        passes = Passes(settings)
        first, second = await _join_all(line, rules, passes, 2)
        assert await line.admit(rules) == 1
        assert (await line.place(rules, first, 0, join=False)).state == "admitted"
        assert await line.leave(rules.event_id, first) == "admitted"
        assert await line.given_up(rules.event_id, 1)
        figures = await line.figures(rules.event_id)
        assert (figures.waiting, figures.shopping, figures.served) == (1, 0, 1)
        assert (await line.place(rules, second, 0, join=False)).ahead == 0
    finally:
        await client.aclose()
