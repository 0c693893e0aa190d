"""The report of a flash-sale run: per-design figures, the ratios between the designs and
the issue's targets, as a dict (for JSON) and as a markdown table."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.pgstats import Transactions
from bench.recorder import Recorder, summary
from seatlock.testing.oracle import Verdict

DESIGNS = {
    "redis": ("Redis hold, then booking transaction", "hold"),
    "baseline": ("one PostgreSQL transaction with SELECT ... FOR UPDATE", "lock_txn"),
}
STEPS = (
    "layout",
    "layout_busy",
    "read",
    "read_unchanged",
    "read_busy",
    "hold",
    "hold_busy",
    "lock_txn",
    "book",
    "book_busy",
    "release",
    "cancel",
    "initiate",
    "initiate_busy",
    "sandbox_complete",
    "sandbox_complete_busy",
    "verify",
    "verify_busy",
)
# The busiest stretch of a run, for its peak checkout rate.
PEAK_WINDOW_SECONDS = 5.0
# `holds`: the second service server of `--separate-holds`, where there is one.
CPU_GROUPS = (
    "service",
    "holds",
    "baseline",
    "postgresql",
    "valkey",
    "client",
    "other",
    "machine",
)


@dataclass(frozen=True)
class Measured:
    """Everything one design's run produced."""

    mode: str
    recorder: Recorder
    elapsed: float
    capacity: int
    transactions: Transactions
    verdict: Verdict
    cpu: dict[str, float]
    client_processes: int


def _rate(count: float, seconds: float) -> float:
    return round(count / seconds, 2) if seconds > 0 else math.nan


def _per(count: int, unit: int) -> float | None:
    return round(count / unit, 2) if unit else None


def _rounded(seconds: float | None) -> float | None:
    return round(seconds, 3) if seconds is not None else None


def mode_report(run: Measured) -> dict[str, Any]:
    design, step = DESIGNS[run.mode]
    recorder = run.recorder
    sold_out_at = recorder.sold_out_at(run.capacity)
    # Rates over the selling time: until the last seat was paid, or the whole run.
    window = sold_out_at if sold_out_at is not None else run.elapsed
    attempts = len(recorder.contended)
    refused = recorder.conflicts[step]
    sold = run.verdict.sold_seats
    return {
        "mode": run.mode,
        "design": design,
        "contended_step": step,
        "elapsed_s": round(run.elapsed, 3),
        "selling_s": round(window, 3),
        "contended_attempts": attempts,
        "contended_successes": recorder.contended_won,
        "contended_refused": refused,
        "contended_attempts_per_s": _rate(attempts, window),
        # holds/s for Seatlock, locking transactions/s for the baseline
        "contended_per_s": _rate(recorder.contended_won, window),
        "checkouts": len(recorder.checkouts),
        "checkouts_per_s": _rate(len(recorder.checkouts), window),
        # Returned seats sell in a long tail (hold TTL, payment window): the peak shows
        # what the design sustains while seats are there to sell.
        "peak_checkouts_per_s": recorder.peak_rate(PEAK_WINDOW_SECONDS),
        "seats": run.capacity,
        "seats_sold": sold,
        "sold_out": sold >= run.capacity,
        "time_to_sell_out_s": _rounded(sold_out_at),
        "time_to_sell_90pct_s": _rounded(recorder.sold_out_at(0.9 * run.capacity)),
        "conflicts": dict(recorder.conflicts),
        "conflicts_total": sum(recorder.conflicts.values()),
        "errors": dict(recorder.errors),
        "errors_total": sum(recorder.errors.values()),
        "busy": dict(recorder.busy),
        "busy_total": sum(recorder.busy.values()),
        "resent": dict(recorder.resent),
        "resent_total": sum(recorder.resent.values()),
        "outcomes": dict(recorder.outcomes),
        "latency_ms": {s: summary(recorder.latencies[s]) for s in STEPS if s in recorder.latencies},
        "contended_latency_ms": summary([ms for _, ms, _ in recorder.contended]),
        "client_loop_lag_ms": summary(recorder.loop_lags),
        "pg_transactions": run.transactions.total,
        "pg_commits": run.transactions.commits,
        "pg_rollbacks": run.transactions.rollbacks,
        "pg_transactions_per_sold_seat": _per(run.transactions.total, sold),
        "pg_transactions_per_refused_attempt": _per(run.transactions.total, refused),
        "cpu_share": run.cpu,
        "client_processes": run.client_processes,
        "oracle": run.verdict.as_dict(),
        "timeline": recorder.timeline(run.elapsed),
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return round(a / b, 3)


RATIOS: dict[str, Callable[[dict[str, Any]], float | None]] = {
    "checkouts_per_s": lambda m: m["checkouts_per_s"],
    "peak_checkouts_per_s": lambda m: m["peak_checkouts_per_s"],
    "contended_per_s": lambda m: m["contended_per_s"],
    "contended_attempts_per_s": lambda m: m["contended_attempts_per_s"],
    "contended_p99": lambda m: m["contended_latency_ms"]["p99"],
    "time_to_sell_out": lambda m: m["time_to_sell_out_s"],
    "time_to_sell_90pct": lambda m: m["time_to_sell_90pct_s"],
    "pg_transactions_per_sold_seat": lambda m: m["pg_transactions_per_sold_seat"],
    "pg_transactions_per_refused_attempt": lambda m: m["pg_transactions_per_refused_attempt"],
}


# The flash-sale issue's targets for each scenario: Seatlock's checkouts/s at least this
# many times the baseline's.
CHECKOUT_TARGETS = {"spread": 1.0, "flash": 2.0}


def _at_most(ratio: float | None, bound: float) -> bool:
    return ratio is not None and ratio <= bound


def _sold_out_in_half_the_time(redis: dict[str, Any], baseline: dict[str, Any]) -> bool:
    """Seatlock sold out in at most half the baseline's time; a baseline that never sold
    out counts as its whole run (so the target holds only when that is long enough)."""
    mine = redis["time_to_sell_out_s"]
    theirs = baseline["time_to_sell_out_s"] or baseline["selling_s"]
    return mine is not None and mine <= theirs / 2


def comparison(modes: dict[str, dict[str, Any]], scenario: str) -> dict[str, Any]:
    redis, baseline = modes.get("redis"), modes.get("baseline")
    out: dict[str, Any] = {"ratios": None, "targets": {}}
    if redis is not None and baseline is not None:
        ratios = {name: _ratio(get(redis), get(baseline)) for name, get in RATIOS.items()}
        out["ratios"] = ratios
        wanted = CHECKOUT_TARGETS.get(scenario, 1.0)
        targets = out["targets"]
        targets[f"checkouts_at_least_{wanted:g}x_baseline"] = (
            ratios["checkouts_per_s"] or 0
        ) >= wanted
        targets["pg_transactions_per_sold_seat_at_most_baseline"] = _at_most(
            ratios["pg_transactions_per_sold_seat"], 1.0
        )
        if scenario == "flash":
            targets["sold_out_in_at_most_half_the_time"] = _sold_out_in_half_the_time(
                redis, baseline
            )
            targets["contended_p99_at_most_third_of_baseline"] = _at_most(
                ratios["contended_p99"], 1 / 3
            )
    out["targets"]["zero_oversold_and_oracle_passed"] = all(
        m["oracle"]["passed"] for m in modes.values()
    )
    return out


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:,.2f}"
    return str(value)


def _quantiles(figures: dict[str, Any] | None) -> str:
    if not figures or not figures["count"]:
        return "-"
    return " / ".join(_cell(figures[q]) for q in ("p50", "p95", "p99"))


# (label, value of one design, key of its ratio)
ROWS: tuple[tuple[str, Callable[[dict[str, Any]], Any], str | None], ...] = (
    ("contended step", lambda m: m["contended_step"], None),
    ("checkouts/s", lambda m: m["checkouts_per_s"], "checkouts_per_s"),
    ("checkouts/s, busiest 5 s", lambda m: m["peak_checkouts_per_s"], "peak_checkouts_per_s"),
    ("checkouts", lambda m: m["checkouts"], None),
    ("seats sold", lambda m: f"{m['seats_sold']}/{m['seats']}", None),
    ("time to sell out (s)", lambda m: m["time_to_sell_out_s"], "time_to_sell_out"),
    ("time to sell 90 % (s)", lambda m: m["time_to_sell_90pct_s"], "time_to_sell_90pct"),
    ("contended attempts/s", lambda m: m["contended_attempts_per_s"], "contended_attempts_per_s"),
    ("contended successes/s", lambda m: m["contended_per_s"], "contended_per_s"),
    ("contended p50 / p95 / p99 (ms)", lambda m: _quantiles(m["contended_latency_ms"]), None),
    ("contended p99 (ms)", lambda m: m["contended_latency_ms"]["p99"], "contended_p99"),
    (
        "load client's loop lag p50 / p95 / p99 (ms)",
        lambda m: _quantiles(m["client_loop_lag_ms"]),
        None,
    ),
    ("409s (all steps)", lambda m: m["conflicts_total"], None),
    ("errors (all steps)", lambda m: m["errors_total"], None),
    ("requests shed (503 overloaded), tried again", lambda m: m["busy_total"], None),
    ("bookings and payments answered 503, sent again", lambda m: m["resent_total"], None),
    ("PG transactions (commit + rollback)", lambda m: m["pg_transactions"], None),
    ("PG rollbacks", lambda m: m["pg_rollbacks"], None),
    (
        "PG transactions per sold seat",
        lambda m: m["pg_transactions_per_sold_seat"],
        "pg_transactions_per_sold_seat",
    ),
    (
        "PG transactions per refused attempt",
        lambda m: m["pg_transactions_per_refused_attempt"],
        "pg_transactions_per_refused_attempt",
    ),
    ("oracle", lambda m: "passed" if m["oracle"]["passed"] else "FAILED", None),
)


def preamble(report: dict[str, Any]) -> list[str]:
    """What was run and under which conditions, above the figures."""
    config, machine = report["config"], report["machine"]
    policy = config["event_policy"]
    lines = [
        f"Scenario {config['scenario']}: {config['buyers']} buyers, {config['seats']} seats, "
        f"{config['workers']} workers per server ({config['server']}), time limit "
        f"{config['duration_s']:g} s per design, {config['client_processes']} load client "
        f"process(es), seed {config['seed']}.",
        f"Machine: {machine['cpus']} CPUs ({machine['cpu_model']}), load average before the run "
        f"{machine['load_average_1_5_15']}; servers {machine.get('servers', {})}.",
    ]
    if isinstance(policy, dict):
        lines.append(
            f"Event: holds last {policy['hold_ttl_seconds']} s, bookings wait "
            f"{policy['payment_window_seconds']} s for payment, so seats abandoned after a "
            "hold or a booking come back within the run (the service sweeps expired "
            "bookings every 5 s)."
        )
    if config.get("crowd"):
        lines.append(f"Crowd: {config['crowd']}.")
    lines.append(
        "CPU shares are of the whole machine (100 % = every core busy); `other` is what "
        "ran besides the processes named."
    )
    return [*lines, ""]


def markdown(report: dict[str, Any]) -> str:
    modes: dict[str, dict[str, Any]] = report["modes"]
    names, pick = list(modes), list(modes.values())
    ratios = report["comparison"]["ratios"] or {}
    both = len(names) == 2
    lines = [
        *preamble(report),
        "| metric | " + " | ".join(names) + (" | redis / baseline |" if both else " |"),
        "|---" * (len(names) + 1 + both) + "|",
    ]

    def row(label: str, values: list[Any], ratio: Any = None) -> None:
        cells = [_cell(v) for v in values] + ([_cell(ratio)] if both else [])
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    for label, value, ratio in ROWS:
        row(label, [value(m) for m in pick], ratios.get(ratio) if ratio else None)
    for step in STEPS:
        if any(step in m["latency_ms"] for m in pick):
            row(
                f"{step} p50 / p95 / p99 (ms)",
                [_quantiles(m["latency_ms"].get(step)) for m in pick],
            )
    for group in CPU_GROUPS:
        if any(group in m["cpu_share"] for m in pick):
            row(f"CPU share: {group}", [f"{m['cpu_share'].get(group, 0):.0%}" for m in pick])
    outcomes = sorted({o for m in pick for o in m["outcomes"]})
    for outcome in outcomes:
        row(f"buyers: {outcome}", [m["outcomes"].get(outcome, 0) for m in pick])
    lines.append("")
    targets = report["comparison"]["targets"]
    lines += [f"- target {name}: {'met' if ok else 'MISSED'}" for name, ok in targets.items()]
    return "\n".join(lines)
