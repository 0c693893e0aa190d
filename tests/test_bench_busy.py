"""The benchmark's buyers and a 503 with Retry-After: a shed request is counted apart from
errors, and either way the buyer waits at least that long before it tries again."""

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


def test_a_shed_request_is_counted_apart_and_any_503_with_retry_after_is_waited_out() -> None:
    recorder = Recorder()
    shed = Reply(503, b'{"type": "/problems/overloaded"}', {"retry-after": "2"})
    outage = Reply(503, b'{"type": "/problems/unavailable"}', {"retry-after": "1"})

    with pytest.raises(Busy) as after_shedding:
        raise_if_busy(recorder, "hold", shed)
    with pytest.raises(Busy) as after_outage:
        raise_if_busy(recorder, "hold", outage)
    raise_if_busy(recorder, "hold", Reply(201, b"{}"))

    assert (after_shedding.value.retry_after, after_outage.value.retry_after) == (2.0, 1.0)
    assert recorder.busy == {"hold": 1}
    assert recorder.errors == {"hold: HTTP 503": 1}


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
