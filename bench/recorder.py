"""What a run measures: latencies per endpoint, conflicts and errors per step, and a
timeline of checkouts and contended-step latencies for the over-time figures."""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from typing import Any


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def summary(values: list[float]) -> dict[str, float | int]:
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "p50": round(percentile(ordered, 0.50), 2),
        "p95": round(percentile(ordered, 0.95), 2),
        "p99": round(percentile(ordered, 0.99), 2),
        "max": round(ordered[-1], 2) if ordered else math.nan,
    }


class Recorder:
    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.latencies: defaultdict[str, list[float]] = defaultdict(list)
        self.conflicts: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        # (seconds since start, latency in ms) of every contended-step attempt.
        self.contended: list[tuple[float, float]] = []
        self.contended_ok = 0
        self.checkouts: list[float] = []
        self.seats_sold = 0
        self.sold_out_at: float | None = None

    def now(self) -> float:
        return time.perf_counter() - self.started

    def latency(self, endpoint: str, started: float) -> float:
        ms = (time.perf_counter() - started) * 1000
        self.latencies[endpoint].append(ms)
        return ms

    def contended_step(self, started: float, ok: bool) -> None:
        self.contended.append((self.now(), (time.perf_counter() - started) * 1000))
        self.contended_ok += ok

    def checkout(self, seats: int, capacity: int) -> None:
        self.checkouts.append(self.now())
        self.seats_sold += seats
        if self.seats_sold >= capacity and self.sold_out_at is None:
            self.sold_out_at = self.now()

    def error(self, step: str, what: str) -> None:
        self.errors[f"{step}: {what}"] += 1

    def timeline(self, elapsed: float) -> list[dict[str, Any]]:
        """Per second: checkouts, contended-step successes and attempts, and their p99."""
        seconds = max(1, math.ceil(elapsed))
        per_second: list[list[float]] = [[] for _ in range(seconds)]
        for at, ms in self.contended:
            per_second[min(int(at), seconds - 1)].append(ms)
        checkouts = Counter(min(int(at), seconds - 1) for at in self.checkouts)
        return [
            {
                "second": i,
                "checkouts": checkouts[i],
                "contended_attempts": len(per_second[i]),
                "contended_p99_ms": round(percentile(sorted(per_second[i]), 0.99), 2)
                if per_second[i]
                else None,
            }
            for i in range(seconds)
        ]
