"""The benchmark's buyers and a 503 with Retry-After: a shed request is counted apart from
errors, and either way the buyer waits at least that long before it tries again; a booking
or a payment step is sent again as it was."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from bench import crowd, steps
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


class ScriptedConnection(Connection):
    """Answers from a script, and keeps what it was sent."""

    def __init__(self, *answers: Reply) -> None:
        super().__init__("http://127.0.0.1:9")
        self.answers = list(answers)
        self.sent: list[tuple[str, str, Any, Mapping[str, str] | None]] = []

    async def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        self.sent.append((method, path, json, headers))
        return self.answers.pop(0)


async def test_a_booking_answered_503_is_sent_again_as_it_was_until_answered() -> None:
    recorder = Recorder()
    pool_dry = Reply(503, b'{"type": "about:blank"}', {"retry-after": "0"})
    conn = ScriptedConnection(pool_dry, pool_dry, Reply(201, b'{"id": "b"}'))
    headers = {"Idempotency-Key": "k"}

    reply = await steps.sent_until_answered(
        recorder, "book", conn, "POST", "/api/bookings", {"hold_id": "h"}, headers
    )

    assert reply.status == 201
    assert conn.sent == [("POST", "/api/bookings", {"hold_id": "h"}, headers)] * 3
    assert recorder.resent == {"book": 2}
    assert (len(recorder.latencies["book_busy"]), len(recorder.latencies["book"])) == (2, 1)
    assert recorder.errors == {}


async def test_a_booking_is_sent_again_at_most_max_resends_times() -> None:
    recorder = Recorder()
    pool_dry = Reply(503, b"{}", {"retry-after": "0"})
    conn = ScriptedConnection(*[pool_dry] * (steps.MAX_RESENDS + 1))

    reply = await steps.sent_until_answered(recorder, "book", conn, "POST", "/api/bookings")

    assert reply.status == 503
    assert len(conn.sent) == steps.MAX_RESENDS + 1
    assert recorder.resent == {"book": steps.MAX_RESENDS}
