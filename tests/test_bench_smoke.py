"""Tiny flash-sale runs of both scenarios and both designs, on one set of servers: the
benchmark works end to end, its oracle passes and its report carries every field; with
`--separate-holds`, on servers of its own, the holds go to the second server. Speed is
not asserted. The checkout's cost per step, on the same servers. The waiting room's
benchmark: its arguments and its rank correlation."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import NullPool
from sqlalchemy.ext.asyncio import create_async_engine

from bench import checkout_cost, crowd, flash_sale, plot, report, targets, waiting_room
from seatlock.models import Role
from seatlock.testing import accounts
from seatlock.testing.servers import Backends

MODE_FIELDS = {
    "mode",
    "design",
    "contended_step",
    "elapsed_s",
    "selling_s",
    "contended_attempts",
    "contended_successes",
    "contended_refused",
    "contended_attempts_per_s",
    "contended_per_s",
    "checkouts",
    "checkouts_per_s",
    "peak_checkouts_per_s",
    "seats",
    "seats_sold",
    "sold_out",
    "time_to_sell_out_s",
    "time_to_sell_90pct_s",
    "conflicts",
    "conflicts_total",
    "errors",
    "errors_total",
    "busy",
    "busy_total",
    "resent",
    "resent_total",
    "outcomes",
    "latency_ms",
    "contended_latency_ms",
    "client_loop_lag_ms",
    "pg_transactions",
    "pg_commits",
    "pg_rollbacks",
    "pg_transactions_per_sold_seat",
    "pg_transactions_per_refused_attempt",
    "cpu_share",
    "client_processes",
    "oracle",
    "timeline",
}
CPU_GROUPS = {"service", "baseline", "postgresql", "valkey", "client", "other", "machine"}
# Quick buyers: the smoke run lasts seconds, not minutes.
QUICK = crowd.Knobs(think_seconds=0.2, arrival_seconds=0.5, idle_poll_seconds=1.0)


@pytest.fixture(scope="module")
def target() -> Iterator[targets.Target]:
    with ExitStack() as stack:
        yield targets.start(stack, flash_sale.Options(workers=1))


def _run(options: flash_sale.Options, target: targets.Target) -> dict[str, Any]:
    result = asyncio.run(flash_sale.measure(options, target))
    assert result["oracle_passed"] is True
    assert set(result["modes"]) == {"redis", "baseline"}
    for mode in result["modes"].values():
        assert set(mode) >= MODE_FIELDS, MODE_FIELDS - set(mode)
        assert mode["oracle"]["passed"], mode["oracle"]["violations"]
        assert mode["oracle"]["sold_seats"] <= options.seats
        assert mode["checkouts"] > 0
        assert mode["pg_transactions"] > 0
        assert set(mode["cpu_share"]) == CPU_GROUPS
        assert mode["cpu_share"]["service"] > 0
        assert {"p50", "p95", "p99"} <= set(mode["contended_latency_ms"])
        assert mode["client_loop_lag_ms"]["count"] > 0
    assert {"hold", "book", "initiate", "verify"} <= set(result["modes"]["redis"]["latency_ms"])
    assert "lock_txn" in result["modes"]["baseline"]["latency_ms"]
    assert set(result["comparison"]["ratios"]) == set(report.RATIOS)
    assert "zero_oversold_and_oracle_passed" in result["comparison"]["targets"]
    assert "| metric |" in report.markdown(result)
    return result


def test_tiny_spread_sale_in_both_designs_passes_the_oracle(target: targets.Target) -> None:
    options = flash_sale.Options(seats=60, buyers=16, duration=4, workers=1, progress_seconds=60)
    _run(options, target)


def test_tiny_flash_crowd_in_both_designs_passes_the_oracle(
    target: targets.Target, tmp_path: Path
) -> None:
    options = flash_sale.Options(
        scenario="flash", seats=40, buyers=120, duration=5, workers=1, knobs=QUICK
    )
    result = _run(options, target)

    for mode in result["modes"].values():
        assert mode["contended_refused"] > 0, "a crowd on few seats is refused"
        assert "read" in mode["latency_ms"]
        assert mode["outcomes"].get("completed", 0) > 0
    assert result["config"]["event_policy"]["hold_ttl_seconds"] == 30
    pytest.importorskip("matplotlib")
    assert plot.plot(result, str(tmp_path / "timeline.png"))
    assert (tmp_path / "timeline.png").stat().st_size > 0


async def _hold_requests(target: targets.Target) -> dict[str, float]:
    """Hold requests each server answered, from its metrics (one worker each)."""
    engine = create_async_engine(target.database_url, poolclass=NullPool)
    assert target.jwt_secret is not None
    (admin,) = await accounts.mint_accounts(engine, target.jwt_secret, 1, Role.ADMIN)
    await engine.dispose()
    answered = {}
    for name, url in (("service", target.service), ("holds", target.holds)):
        assert url is not None
        async with httpx.AsyncClient(base_url=url) as client:
            text = (await client.get("/metrics", headers=admin)).text
        answered[name] = sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "seatlock_http_requests_total"
            and sample.labels["route"] == "/api/events/{event_id}/holds"
            and sample.labels["method"] == "POST"
        )
    return answered


def test_separate_holds_go_to_a_server_of_their_own() -> None:
    options = flash_sale.Options(
        scenario="flash",
        seats=40,
        buyers=120,
        duration=5,
        workers=1,
        modes=("redis",),
        separate_holds=True,
        knobs=QUICK,
    )
    with ExitStack() as stack:
        target = targets.start(stack, options)
        result = asyncio.run(flash_sale.measure(options, target))
        answered = asyncio.run(_hold_requests(target))

    mode = result["modes"]["redis"]
    assert result["oracle_passed"] is True
    assert result["config"]["separate_holds"] is True
    assert mode["outcomes"].get("completed", 0) > 0
    assert mode["cpu_share"]["holds"] > 0
    assert answered == {
        "service": 0,
        "holds": mode["contended_attempts"] + mode["busy"].get("hold", 0),
    }


# The measured steps that cost the service several milliseconds of CPU each (RESULTS.md).
COSTLY_STEPS = ("book", "initiate", "verify", "seat_map")


def test_the_checkout_cost_of_every_step_is_measured_on_requests_that_succeed(
    target: targets.Target,
) -> None:
    assert target.redis_url is not None
    assert target.jwt_secret is not None
    backends = Backends(target.database_url, target.redis_url, target.jwt_secret, owned=False)

    figures = asyncio.run(
        checkout_cost.measure(
            target.service, backends, 20, warm_up=5, reads=20, baseline_url=target.baseline
        )
    )

    steps = [f["step"] for f in figures]
    assert steps == [
        "hold",
        "book",
        "initiate",
        "sandbox_complete",
        "verify",
        "snapshot",
        "seat_map",
        "baseline_lock_txn",
    ]
    for found in figures:
        assert found["ok"] == found["requests"] > 0, found
    # CPU is counted in clock ticks of 10 ms: 20 requests of a step that costs a millisecond
    # or two (the hold, the sandbox page, the snapshot, the baseline's locking transaction)
    # may all fall between two ticks and count 0.
    costly = {f["step"]: f["cpu_ms_per_request"] for f in figures if f["step"] in COSTLY_STEPS}
    assert all(spent > 0 for spent in costly.values()), costly


def test_the_waiting_room_benchmark_takes_a_small_run() -> None:
    argv = ["--buyers", "2000", "--minutes", "1", "--duration", "3", "--json", "room.json"]

    options, json_path = waiting_room.parse(argv)

    assert (options.buyers, options.minutes, options.duration) == (2000, 1, 3.0)
    assert json_path == "room.json"
    assert waiting_room.parse([])[0] == waiting_room.Options()
    with pytest.raises(SystemExit):
        waiting_room.parse(["--late", "1"])


def test_the_rank_correlation_tells_a_shuffle_from_arrival_order() -> None:
    shuffled = random.Random(1).sample(range(2000), 2000)

    assert waiting_room.spearman([1, 2, 3, 4]) == 1.0
    assert waiting_room.spearman([40, 30, 20, 10]) == -1.0
    assert abs(waiting_room.spearman(shuffled)) < waiting_room.RHO_BOUND
