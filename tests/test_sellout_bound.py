"""bench/sellout_bound.py: the floor an instant server would reach in the flash scenario."""

from __future__ import annotations

import random

from bench import crowd
from bench.sellout_bound import Policy, bounds, comeback, sales

POLICY = Policy(hold_ttl=30, payment_window=60, sweep_interval=5, notice=1)


def test_abandoned_seats_come_back_when_their_hold_or_booking_runs_out() -> None:
    rng = random.Random(1)

    assert comeback("redis", "release", 1.2, POLICY, rng) == 1.2
    assert comeback("redis", "expire", 1.2, POLICY, rng) == 30
    # The baseline's claim is a booking: walking away leaves it unpaid until the sweep.
    assert 60 <= comeback("baseline", "expire", 1.2, POLICY, rng) <= 65
    assert 61.2 <= comeback("redis", "unpaid", 1.2, POLICY, rng) <= 66.2
    assert 60 <= comeback("baseline", "unpaid", 1.2, POLICY, rng) <= 65


def test_a_crowd_that_always_pays_sells_out_once_it_has_thought() -> None:
    paying = crowd.Knobs(abandon_hold=0.0, abandon_booking=0.0)

    paid = sales("redis", 300, paying, POLICY, seed=3)

    assert len(paid) == 300
    assert paid == sorted(paid)
    longest_think = 1.5 * paying.think_seconds
    assert paid[-1] <= paying.arrival_seconds + longest_think


def test_the_floor_is_later_for_the_baseline_whose_abandoned_claims_are_bookings() -> None:
    found = bounds(trials=60, notice=1.0)

    redis, baseline = found["redis"]["sold_out"], found["baseline"]["sold_out"]
    assert redis["p10"] <= redis["median"] <= redis["p90"]
    assert redis["median"] < baseline["median"]
    # Seats abandoned again and again: the last one sells minutes after the first.
    assert redis["median"] > 60
