"""How soon the flash scenario's crowd could sell its event out on an instant server: the
floor that the event's policy and the buyers' fates put under `time to sell out`, for each
design, by Monte Carlo.

    .venv/bin/python bench/sellout_bound.py --trials 2000

Nothing is served: every request is answered at once, and a freed seat is taken again
within `--notice` seconds. What is left is what no server can shorten: buyers think before
booking, and an abandoned seat comes back only when its hold or booking runs out, and may
be abandoned again. The designs differ in one thing: a Seatlock buyer who walks away
holding lets a hold lapse (the hold TTL), a baseline buyer a booking (the payment window,
found by the expiry sweep), since the baseline's claim is its booking.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec

from bench import crowd, sale
from bench.flash_sale import SCENARIOS
from seatlock.settings import Settings

DESIGNS = ("redis", "baseline")


@dataclass(frozen=True)
class Policy:
    """What sets when an abandoned seat comes back."""

    hold_ttl: float
    payment_window: float
    sweep_interval: float
    notice: float  # longest wait before a freed seat is taken again


def comeback(design: str, fate: str, think: float, policy: Policy, rng: random.Random) -> float:
    """Seconds from a claim until its seats are free again, for a buyer who does not pay."""
    expired_booking = policy.payment_window + rng.uniform(0, policy.sweep_interval)
    if fate == "release":
        return think
    if fate == "expire":
        return policy.hold_ttl if design == "redis" else expired_booking
    # Unpaid: Seatlock books after thinking; the baseline booked when it claimed.
    return (think if design == "redis" else 0.0) + expired_booking


def sales(design: str, seats: int, knobs: crowd.Knobs, policy: Policy, seed: int) -> list[float]:
    """When each seat is paid in one trial, in order. Each group of seats bought together
    goes through buyers (persona fates drawn as the crowd draws them) until one pays."""
    rng = random.Random(seed)
    quantities = [q for q, _ in crowd.QUANTITIES]
    weights = [w for _, w in crowd.QUANTITIES]
    paid: list[float] = []
    while len(paid) < seats:
        size = min(seats - len(paid), rng.choices(quantities, weights)[0])
        at = rng.uniform(0, knobs.arrival_seconds)
        while True:
            who = crowd.persona(seed, rng.getrandbits(32), knobs)
            if who.fate == "complete":
                paid += [at + who.think] * size
                break
            at += comeback(design, who.fate, who.think, policy, rng)
            at += rng.uniform(0, policy.notice)
    return sorted(paid)


def _spread(times: list[float]) -> dict[str, float]:
    deciles = statistics.quantiles(times, n=10)
    return {
        "p10": round(deciles[0], 1),
        "median": round(statistics.median(times), 1),
        "p90": round(deciles[-1], 1),
    }


def _default(setting: str) -> float:
    [field] = [f for f in msgspec.structs.fields(Settings) if f.name == setting]
    return float(field.default)


def bounds(trials: int, notice: float) -> dict[str, dict[str, dict[str, float]]]:
    scenario = SCENARIOS["flash"]
    assert scenario.policy is not None
    policy = Policy(
        hold_ttl=scenario.policy["hold_ttl_seconds"],
        payment_window=scenario.policy["payment_window_seconds"],
        sweep_interval=_default("expiry_interval_seconds"),
        notice=notice,
    )
    knobs = crowd.Knobs()
    found = {}
    for design in DESIGNS:
        trials_sales = [sales(design, scenario.seats, knobs, policy, t) for t in range(trials)]
        found[design] = {
            "sold_out": _spread([paid[-1] for paid in trials_sales]),
            "sold_90pct": _spread([paid[int(0.9 * len(paid)) - 1] for paid in trials_sales]),
        }
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument(
        "--notice", type=float, default=1.0, help="longest wait before a freed seat is taken"
    )
    args = parser.parse_args()
    print(
        f"flash scenario on an instant server, {SCENARIOS['flash'].seats} seats, "
        f"policy {sale.SHORT_POLICY}, {args.trials} trials"
    )
    print("| design | sold out, p10 / median / p90 (s) | 90 % sold, p10 / median / p90 (s) |")
    print("|---|---|---|")
    for design, figures in bounds(args.trials, args.notice).items():
        out, most = figures["sold_out"], figures["sold_90pct"]
        print(
            f"| {design} | {out['p10']} / {out['median']} / {out['p90']} "
            f"| {most['p10']} / {most['median']} / {most['p90']} |"
        )


if __name__ == "__main__":
    main()
