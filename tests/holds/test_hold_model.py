"""Random sequences of hold operations against the real scripts and a plain Python model."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from redis.asyncio import Redis

from seatlock import keys
from seatlock.errors import Conflict, DomainError, Gone, NotFound
from seatlock.holds.replies import SeatsUnavailable
from seatlock.holds.scripts import load_scripts, register_scripts
from seatlock.holds.store import HoldPolicy, HoldStore
from seatlock.models import SeatState

SEATS = [uuid.uuid4() for _ in range(8)]
OWNERS = [uuid.uuid4() for _ in range(3)]
POLICY = HoldPolicy(ttl_ms=60_000, max_extensions=2, max_lifetime_ms=600_000, seat_cap=4)


@dataclass
class ModelHold:
    owner: uuid.UUID
    seats: list[uuid.UUID]
    state: str = "held"
    extensions: int = 0


@dataclass
class Model:
    holds: dict[str, ModelHold] = field(default_factory=dict)
    # PostgreSQL's truth about reserved and sold seats, which survives a flush of Redis.
    taken: dict[uuid.UUID, SeatState] = field(default_factory=dict)

    def holder(self, seat: uuid.UUID) -> str | None:
        return next((h for h, hold in self.holds.items() if seat in hold.seats), None)

    def expected_conflicts(self, owner: uuid.UUID, seats: list[uuid.UUID]) -> dict[str, str]:
        conflicts: dict[str, str] = {}
        for seat in seats:
            if seat in self.taken:
                conflicts[str(seat)] = self.taken[seat].value
            elif self.holder(seat):
                conflicts[str(seat)] = "held"
        if conflicts:
            return conflicts
        owned = sum(len(h.seats) for h in self.holds.values() if h.owner == owner)
        if owned + len(seats) > POLICY.seat_cap:
            return {str(seat): "limit" for seat in seats}
        return {}


class HoldMachine(RuleBasedStateMachine):
    redis_url = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.redis = Redis.from_url(self.redis_url, decode_responses=True)
        self.run(self.redis.flushall())
        scripts = register_scripts(self.redis)
        self.run(load_scripts(self.redis, scripts))
        self.store = HoldStore(self.redis, scripts)
        self.event = uuid.uuid4()
        self.model = Model()

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        self.run(self.redis.aclose())
        self.loop.close()

    async def snapshot(self, event_id: uuid.UUID) -> dict[uuid.UUID, SeatState]:
        return dict(self.model.taken)

    def attempt(self, coroutine: Any) -> Any:
        try:
            return self.run(coroutine)
        except DomainError as error:
            return error

    def pick(self, data: st.DataObject) -> str | None:
        if not self.model.holds:
            return None
        return data.draw(st.sampled_from(sorted(self.model.holds)))

    @rule(
        owner=st.sampled_from(OWNERS),
        seats=st.lists(st.sampled_from(SEATS), min_size=1, max_size=5, unique=True),
    )
    def hold(self, owner: uuid.UUID, seats: list[uuid.UUID]) -> None:
        expected = self.model.expected_conflicts(owner, seats)
        result = self.attempt(self.store.hold(self.event, owner, seats, POLICY, self.snapshot))
        if expected:
            assert isinstance(result, SeatsUnavailable)
            assert {str(seat) for seat in result.conflicts} == set(expected)
        else:
            assert not isinstance(result, DomainError), result
            self.model.holds[result.id] = ModelHold(owner, seats)

    @rule(data=st.data(), by_owner=st.booleans())
    def extend(self, data: st.DataObject, by_owner: bool) -> None:
        hold_id = self.pick(data)
        if hold_id is None:
            return
        hold = self.model.holds[hold_id]
        caller = hold.owner if by_owner else uuid.uuid4()
        result = self.attempt(self.store.extend(hold_id, caller))
        if not by_owner:
            assert isinstance(result, NotFound)
        elif hold.state != "held" or hold.extensions >= POLICY.max_extensions:
            assert isinstance(result, Conflict)
        else:
            assert result.extensions_left == POLICY.max_extensions - hold.extensions - 1
            hold.extensions += 1

    @rule(data=st.data(), by_owner=st.booleans())
    def release(self, data: st.DataObject, by_owner: bool) -> None:
        hold_id = self.pick(data)
        if hold_id is None:
            return
        hold = self.model.holds[hold_id]
        result = self.attempt(self.store.release(hold_id, hold.owner if by_owner else uuid.uuid4()))
        if by_owner:
            assert result == hold.seats
            del self.model.holds[hold_id]
        else:
            assert isinstance(result, NotFound)

    @rule(data=st.data())
    def claim(self, data: st.DataObject) -> None:
        hold_id = self.pick(data)
        if hold_id is None:
            return
        hold = self.model.holds[hold_id]
        result = self.attempt(self.store.claim(hold_id, hold.owner))
        if hold.state == "held":
            assert result == (self.event, hold.seats)
            hold.state = "converting"
        else:
            assert isinstance(result, Conflict)

    @rule(data=st.data(), state=st.sampled_from([SeatState.RESERVED, SeatState.SOLD]))
    def complete(self, data: st.DataObject, state: SeatState) -> None:
        converting = sorted(h for h, hold in self.model.holds.items() if hold.state == "converting")
        if not converting:
            return
        hold_id = data.draw(st.sampled_from(converting))
        hold = self.model.holds.pop(hold_id)
        # As the booking code does: PostgreSQL commits first, then Redis is told.
        self.model.taken.update(dict.fromkeys(hold.seats, state))
        self.run(self.store.complete(hold_id, hold.owner, state, hold.seats))

    @rule(data=st.data())
    def expire(self, data: st.DataObject) -> None:
        hold_id = self.pick(data)
        if hold_id is None:
            return
        hold = self.model.holds.pop(hold_id)
        # What the TTL does when it runs out, without waiting for it.
        self.run(self.redis.zadd(keys.event_holds(self.event), {hold_id: 1}))
        self.run(self.redis.zadd(keys.owner_holds(self.event, hold.owner), {hold_id: 1}))
        self.run(self.redis.delete(keys.hold(self.event, hold_id)))
        assert isinstance(self.attempt(self.store.claim(hold_id, hold.owner)), Gone)

    @rule()
    def flush(self) -> None:
        self.run(self.redis.flushall())
        self.model.holds.clear()

    @rule(seat=st.sampled_from(SEATS))
    def free_in_postgresql(self, seat: uuid.UUID) -> None:
        if seat in self.model.taken:
            del self.model.taken[seat]
            self.run(self.store.free_taken(self.event, [seat], "cancellation"))

    @invariant()
    def held_seats_agree(self) -> None:
        held = self.run(self.store.held_seats(self.event))
        expected = {seat: h for h, hold in self.model.holds.items() for seat in hold.seats}
        assert {seat: entry.hold_id for seat, entry in held.items()} == expected


def test_scripts_agree_with_the_model(redis_url: str) -> None:
    HoldMachine.redis_url = redis_url
    machine = settings(
        max_examples=40,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )(HoldMachine)
    machine.TestCase().runTest()
