"""The report of a flash-sale run: per-mode figures, the ratios between the modes and the
issue's targets, as a dict (for JSON), a markdown table and an optional PNG."""

from __future__ import annotations

import math
import os
import platform
from typing import Any

from bench.recorder import Recorder, summary
from seatlock.testing.oracle import Verdict

DESIGNS = {
    "redis": ("Redis hold, then booking transaction", "hold"),
    "baseline": ("one PostgreSQL transaction with SELECT ... FOR UPDATE", "lock_txn"),
}
ENDPOINTS = ("hold", "book", "lock_txn", "initiate", "sandbox_complete", "verify")


def _rate(count: float, seconds: float) -> float:
    return round(count / seconds, 2) if seconds > 0 else math.nan


def mode_report(
    mode: str,
    recorder: Recorder,
    elapsed: float,
    capacity: int,
    pg_transactions: int,
    verdict: Verdict,
) -> dict[str, Any]:
    design, step = DESIGNS[mode]
    attempts = len(recorder.contended)
    sold = verdict.sold_seats
    return {
        "mode": mode,
        "design": design,
        "contended_step": step,
        "elapsed_s": round(elapsed, 3),
        "contended_attempts": attempts,
        "contended_successes": recorder.contended_ok,
        "contended_attempts_per_s": _rate(attempts, elapsed),
        # holds/s for Seatlock, locking transactions/s for the baseline
        "contended_per_s": _rate(recorder.contended_ok, elapsed),
        "checkouts": len(recorder.checkouts),
        "checkouts_per_s": _rate(len(recorder.checkouts), elapsed),
        "seats": capacity,
        "seats_sold": sold,
        "sold_out": sold >= capacity,
        "time_to_sell_out_s": (
            round(recorder.sold_out_at, 3) if recorder.sold_out_at is not None else None
        ),
        "conflicts": dict(recorder.conflicts),
        "conflicts_total": sum(recorder.conflicts.values()),
        "errors": dict(recorder.errors),
        "errors_total": sum(recorder.errors.values()),
        "latency_ms": {
            e: summary(recorder.latencies[e]) for e in ENDPOINTS if e in recorder.latencies
        },
        "contended_latency_ms": summary([ms for _, ms in recorder.contended]),
        "pg_transactions": pg_transactions,
        "pg_transactions_per_sold_seat": round(pg_transactions / sold, 2) if sold else None,
        "oracle": verdict.as_dict(),
        "timeline": recorder.timeline(elapsed),
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return round(a / b, 3)


def comparison(modes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    redis, baseline = modes.get("redis"), modes.get("baseline")
    out: dict[str, Any] = {"ratios": None, "targets": {}}
    if redis is not None:
        hold_p99 = redis["latency_ms"].get("hold", {}).get("p99", math.nan)
        out["targets"]["hold_p99_under_50ms"] = bool(hold_p99 < 50)
    if redis is not None and baseline is not None:
        ratios = {
            "checkouts_per_s": _ratio(redis["checkouts_per_s"], baseline["checkouts_per_s"]),
            "contended_per_s": _ratio(redis["contended_per_s"], baseline["contended_per_s"]),
            "contended_p99": _ratio(
                redis["contended_latency_ms"]["p99"], baseline["contended_latency_ms"]["p99"]
            ),
            "time_to_sell_out": _ratio(redis["time_to_sell_out_s"], baseline["time_to_sell_out_s"]),
            "pg_transactions_per_sold_seat": _ratio(
                redis["pg_transactions_per_sold_seat"], baseline["pg_transactions_per_sold_seat"]
            ),
        }
        out["ratios"] = ratios
        out["targets"]["checkouts_at_least_3x_baseline"] = (ratios["checkouts_per_s"] or 0) >= 3
        out["targets"]["contended_p99_at_most_third_of_baseline"] = (
            ratios["contended_p99"] is not None and ratios["contended_p99"] <= 1 / 3
        )
    out["targets"]["zero_oversold_and_oracle_passed"] = all(
        m["oracle"]["passed"] for m in modes.values()
    )
    return out


def machine() -> dict[str, Any]:
    memory = None
    try:
        with open("/proc/meminfo") as meminfo:
            memory = meminfo.readline().split(":")[1].strip()
    except OSError:
        pass
    model = platform.processor()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(
                (
                    line.split(":", 1)[1].strip()
                    for line in cpuinfo
                    if line.startswith("model name")
                ),
                model,
            )
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory": memory,
        "python": platform.python_version(),
        "system": platform.platform(),
    }


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:,.2f}"
    return str(value)


def markdown(report: dict[str, Any]) -> str:
    modes: dict[str, dict[str, Any]] = report["modes"]
    names = list(modes)
    ratios = report["comparison"]["ratios"] or {}
    both = len(names) == 2
    header = "| metric | " + " | ".join(names) + (" | redis / baseline |" if both else " |")
    lines = [header, "|---" * (len(names) + 1 + both) + "|"]

    def row(label: str, values: list[Any], ratio: Any = None) -> None:
        cells = [_cell(v) for v in values] + ([_cell(ratio)] if both else [])
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    pick = [modes[n] for n in names]
    row("contended step", [m["contended_step"] for m in pick])
    row(
        "holds/s (baseline: locking txns/s)",
        [m["contended_per_s"] for m in pick],
        ratios.get("contended_per_s"),
    )
    row("contended attempts/s", [m["contended_attempts_per_s"] for m in pick])
    row("checkouts/s", [m["checkouts_per_s"] for m in pick], ratios.get("checkouts_per_s"))
    row("checkouts", [m["checkouts"] for m in pick])
    row("seats sold", [f"{m['seats_sold']}/{m['seats']}" for m in pick])
    row(
        "time to sell out (s)",
        [m["time_to_sell_out_s"] for m in pick],
        ratios.get("time_to_sell_out"),
    )
    row("conflicts (409)", [m["conflicts_total"] for m in pick])
    row("errors", [m["errors_total"] for m in pick])
    for q in ("p50", "p95", "p99"):
        row(
            f"contended step {q} (ms)",
            [m["contended_latency_ms"][q] for m in pick],
            ratios.get("contended_p99") if q == "p99" else None,
        )
    for endpoint in ENDPOINTS:
        if any(endpoint in m["latency_ms"] for m in pick):
            for q in ("p50", "p95", "p99"):
                row(
                    f"{endpoint} {q} (ms)", [m["latency_ms"].get(endpoint, {}).get(q) for m in pick]
                )
    row("PG transactions", [m["pg_transactions"] for m in pick])
    row(
        "PG transactions per sold seat",
        [m["pg_transactions_per_sold_seat"] for m in pick],
        ratios.get("pg_transactions_per_sold_seat"),
    )
    row("oracle", ["passed" if m["oracle"]["passed"] else "FAILED" for m in pick])
    targets = report["comparison"]["targets"]
    lines.append("")
    lines += [f"- target {name}: {'met' if ok else 'MISSED'}" for name, ok in targets.items()]
    return "\n".join(lines)


def plot(report: dict[str, Any], path: str) -> bool:
    """Throughput and p99 of the contended step over time; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    for name, mode in report["modes"].items():
        seconds = [p["second"] for p in mode["timeline"]]
        top.plot(seconds, [p["checkouts"] for p in mode["timeline"]], label=f"{name} checkouts/s")
        top.plot(
            seconds,
            [p["contended_attempts"] for p in mode["timeline"]],
            linestyle="--",
            label=f"{name} {mode['contended_step']} attempts/s",
        )
        bottom.plot(
            seconds,
            [p["contended_p99_ms"] for p in mode["timeline"]],
            label=f"{name} {mode['contended_step']} p99",
        )
    top.set_ylabel("per second")
    bottom.set_ylabel("p99 latency (ms)")
    bottom.set_xlabel("seconds since the sale opened")
    top.legend()
    bottom.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return True
