"""A tiny flash-sale run of both designs: the benchmark works end to end, its oracle
passes and its report carries every field. Speed is not asserted."""

from __future__ import annotations

from bench import flash_sale, report

MODE_FIELDS = {
    "mode",
    "design",
    "contended_step",
    "elapsed_s",
    "contended_attempts",
    "contended_successes",
    "contended_attempts_per_s",
    "contended_per_s",
    "checkouts",
    "checkouts_per_s",
    "seats",
    "seats_sold",
    "sold_out",
    "time_to_sell_out_s",
    "conflicts",
    "conflicts_total",
    "errors",
    "errors_total",
    "latency_ms",
    "contended_latency_ms",
    "pg_transactions",
    "pg_transactions_per_sold_seat",
    "oracle",
    "timeline",
}


def test_tiny_flash_sale_in_both_modes_passes_the_oracle() -> None:
    options = flash_sale.Options(seats=60, buyers=16, duration=4, workers=1, progress_seconds=60)
    result = flash_sale.run(options)

    assert result["oracle_passed"] is True
    assert set(result["modes"]) == {"redis", "baseline"}
    for mode in result["modes"].values():
        assert set(mode) >= MODE_FIELDS, MODE_FIELDS - set(mode)
        assert mode["oracle"]["passed"], mode["oracle"]["violations"]
        assert mode["oracle"]["sold_seats"] <= 60
        assert mode["checkouts"] > 0
        assert mode["pg_transactions"] > 0
        for q in ("p50", "p95", "p99"):
            assert q in mode["contended_latency_ms"]
    assert {"hold", "book", "initiate", "verify"} <= set(result["modes"]["redis"]["latency_ms"])
    assert "lock_txn" in result["modes"]["baseline"]["latency_ms"]
    ratios = result["comparison"]["ratios"]
    assert set(ratios) == {
        "checkouts_per_s",
        "contended_per_s",
        "contended_p99",
        "time_to_sell_out",
        "pg_transactions_per_sold_seat",
    }
    assert "zero_oversold_and_oracle_passed" in result["comparison"]["targets"]
    assert report.markdown(result).startswith("| metric |")
