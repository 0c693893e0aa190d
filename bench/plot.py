"""The timeline of a flash-sale run as a PNG: per second, checkouts and contended-step
attempts, the contended step's p99, and seats sold so far, one line per design."""

from __future__ import annotations

from typing import Any


def plot(report: dict[str, Any], path: str) -> bool:
    """Write the PNG; False when matplotlib (the `bench` extra) is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, (rates, p99, sold) = plt.subplots(3, 1, figsize=(9, 10), sharex=True)
    for name, mode in report["modes"].items():
        timeline = mode["timeline"]
        seconds = [p["second"] for p in timeline]
        step = mode["contended_step"]
        rates.plot(seconds, [p["checkouts"] for p in timeline], label=f"{name} checkouts/s")
        rates.plot(
            seconds,
            [p["contended_attempts"] for p in timeline],
            linestyle="--",
            label=f"{name} {step} attempts/s",
        )
        p99.plot(seconds, [p["contended_p99_ms"] for p in timeline], label=f"{name} {step} p99")
        sold.plot(seconds, [p["seats_sold"] for p in timeline], label=f"{name} seats sold")
    config = report["config"]
    rates.set_title(
        f"{config['scenario']}: {config['buyers']} buyers, {config['seats']} seats, "
        f"{config['workers']} workers"
    )
    rates.set_ylabel("per second")
    p99.set_ylabel("p99 latency (ms)")
    sold.set_ylabel("seats sold (paid)")
    sold.set_xlabel("seconds since the sale opened")
    for axes in (rates, p99, sold):
        axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return True
