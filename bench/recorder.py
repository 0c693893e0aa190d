"""What a run measures: latencies per step, conflicts and errors per step, a timeline of
checkouts and contended-step latencies for the over-time figures, and how late the load
client's own event loops ran (every latency it measures includes that delay).

Every client process keeps its own Recorder against the same start (time.monotonic() is
one clock for the whole machine); the parent merges their dumps into one.
"""

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
    def __init__(self, started: float | None = None) -> None:
        self.started = time.monotonic() if started is None else started
        self.latencies: defaultdict[str, list[float]] = defaultdict(list)
        self.conflicts: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        # 503s with Retry-After per step: the buyer waited and tried again.
        self.busy: Counter[str] = Counter()
        # 503s with Retry-After of bookings and payments: the same request was sent again.
        self.resent: Counter[str] = Counter()
        # (seconds since start, latency in ms, won) of every contended-step attempt.
        self.contended: list[tuple[float, float, bool]] = []
        # (seconds since start, seats) of every paid checkout.
        self.checkouts: list[tuple[float, int]] = []
        # How the buyers of a flash sale left: completed, released, walked away, ...
        self.outcomes: Counter[str] = Counter()
        # How late a client's event loop ran a timer that was due, in ms: sampled.
        self.loop_lags: list[float] = []

    def now(self) -> float:
        return time.monotonic() - self.started

    def latency(self, step: str, started: float) -> float:
        ms = (time.monotonic() - started) * 1000
        self.latencies[step].append(ms)
        return ms

    def loop_lag(self, ms: float) -> None:
        self.loop_lags.append(ms)

    def contended_step(self, started: float, won: bool) -> None:
        self.contended.append((self.now(), (time.monotonic() - started) * 1000, won))

    def checkout(self, seats: int) -> None:
        self.checkouts.append((self.now(), seats))

    def error(self, step: str, what: str) -> None:
        self.errors[f"{step}: {what}"] += 1

    @property
    def contended_won(self) -> int:
        return sum(1 for _, _, won in self.contended if won)

    @property
    def seats_sold(self) -> int:
        return sum(seats for _, seats in self.checkouts)

    def sold_out_at(self, capacity: float) -> float | None:
        """When the paid seats reached `capacity` (or a share of it), if they did."""
        sold = 0
        for at, seats in sorted(self.checkouts):
            sold += seats
            if sold >= capacity:
                return at
        return None

    def peak_rate(self, window: float) -> float:
        """Checkouts per second in the busiest `window` seconds."""
        times = sorted(at for at, _ in self.checkouts)
        most, first = 0, 0
        for last, at in enumerate(times):
            while times[first] < at - window:
                first += 1
            most = max(most, last - first + 1)
        return round(most / window, 2)

    def dump(self) -> dict[str, Any]:
        """Plain data, to send from a client process to the parent."""
        return {
            "latencies": dict(self.latencies),
            "conflicts": dict(self.conflicts),
            "errors": dict(self.errors),
            "busy": dict(self.busy),
            "resent": dict(self.resent),
            "contended": self.contended,
            "checkouts": self.checkouts,
            "outcomes": dict(self.outcomes),
            "loop_lags": self.loop_lags,
        }

    def merge(self, dump: dict[str, Any]) -> None:
        for step, values in dump["latencies"].items():
            self.latencies[step] += values
        self.conflicts.update(dump["conflicts"])
        self.errors.update(dump["errors"])
        self.busy.update(dump["busy"])
        self.resent.update(dump["resent"])
        self.contended += [tuple(c) for c in dump["contended"]]
        self.checkouts += [tuple(c) for c in dump["checkouts"]]
        self.outcomes.update(dump["outcomes"])
        self.loop_lags += dump["loop_lags"]

    def timeline(self, elapsed: float) -> list[dict[str, Any]]:
        """Per second: checkouts, seats sold so far, contended attempts and their p99."""
        seconds = max(1, math.ceil(elapsed))
        per_second: list[list[float]] = [[] for _ in range(seconds)]
        for at, ms, _ in self.contended:
            per_second[min(int(at), seconds - 1)].append(ms)
        checkouts = Counter(min(int(at), seconds - 1) for at, _ in self.checkouts)
        seats: Counter[int] = Counter()
        for at, n in self.checkouts:
            seats[min(int(at), seconds - 1)] += n
        sold = 0
        points = []
        for i in range(seconds):
            sold += seats[i]
            points.append(
                {
                    "second": i,
                    "checkouts": checkouts[i],
                    "seats_sold": sold,
                    "contended_attempts": len(per_second[i]),
                    "contended_p99_ms": round(percentile(sorted(per_second[i]), 0.99), 2)
                    if per_second[i]
                    else None,
                }
            )
        return points
