"""The benchmark's buyers and a 503 with Retry-After (a worker shedding load): it is counted
apart from errors, and the buyer waits at least that long before it tries again."""

from __future__ import annotations

import asyncio

import pytest

from bench import crowd
from bench.recorder import Recorder
from bench.steps import Busy, Buyer, HoldThenBook, Sale, raise_if_busy
from bench.wire import Connection, Reply


class ScriptedReads:
    """Availability reads that answer from a script: a Busy is raised, a view returned."""

    def __init__(self, *answers: Busy | crowd.Availability) -> None:
        self.answers = list(answers)

    async def read(self, buyer: Buyer, recorder: Recorder) -> crowd.Availability | None:
        answer = self.answers.pop(0)
        if isinstance(answer, Busy):
            raise answer
        return answer


def test_a_503_with_retry_after_is_counted_as_busy_and_raised() -> None:
    recorder = Recorder()
    busy = Reply(503, b"{}", {"retry-after": "2"})

    with pytest.raises(Busy) as raised:
        raise_if_busy(recorder, "hold", busy)
    raise_if_busy(recorder, "hold", Reply(503, b"{}"))  # no Retry-After: an error, not busy
    raise_if_busy(recorder, "hold", Reply(201, b"{}"))

    assert raised.value.retry_after == 2.0
    assert recorder.busy == {"hold": 1}
    assert not recorder.errors


async def test_a_buyer_told_to_come_back_waits_retry_after_then_tries_again() -> None:
    sale = Sale("event", [], "A", seed=7)
    mob = crowd.Crowd(sale, HoldThenBook("event"), Recorder(), crowd.Knobs(), asyncio.Event())
    mob.reads = ScriptedReads(Busy(3.0), crowd.Availability([], sold=10, total=10))
    naps: list[float] = []

    async def nap(seconds: float) -> bool:
        naps.append(seconds)
        return False

    mob.nap = nap  # type: ignore[method-assign]
    await mob.shop(Buyer(0, {}, Connection("http://127.0.0.1:9")))

    arrival, after_busy = naps
    assert arrival == crowd.persona(7, 0, crowd.Knobs()).arrival
    assert 3.0 <= after_busy <= 6.0
    assert mob.recorder.outcomes == {"sold out": 1}
