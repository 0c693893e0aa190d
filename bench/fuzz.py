"""The HTTP contract fuzzed from outside: schemathesis's command line, every check and the
stateful phase over the OpenAPI links, against a service it starts on embedded servers, as
an anonymous caller, a USER, an ORGANIZER and an ADMIN, with an event on sale to hold seats
of. Prints operations, cases and failures per caller; exits 1 on any failure."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import sale, targets
from seatlock import db
from seatlock.models import Role
from seatlock.testing import accounts, fuzzing
from seatlock.testing.servers import Backends, app_server, embedded_backends

ROLES = (Role.USER, Role.ORGANIZER, Role.ADMIN)


async def _callers(base_url: str, backends: Backends) -> dict[str, dict[str, str]]:
    """A token per role, and the event on sale that the buyers' links lead to."""
    engine = db.create_engine(backends.database_url, pool_size=1)
    try:
        minted = {
            role.value: (await accounts.mint_accounts(engine, backends.jwt_secret, 1, role))[0]
            for role in ROLES
        }
    finally:
        await engine.dispose()
    async with targets.setup_client(base_url) as client:
        await sale.create_event(client, minted[Role.ORGANIZER.value], 40, "Fuzzed sale")
    return {"anonymous": {}, **minted}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-examples", type=int, default=10, help="cases per operation")
    parser.add_argument("--workers", type=int, default=1, help="worker processes of the service")
    parser.add_argument(
        "--role",
        action="append",
        choices=["anonymous", *(role.value for role in ROLES)],
        help="fuzz as this caller only (repeatable); every caller by default",
    )
    parser.add_argument("--verbose", action="store_true", help="print schemathesis's own output")
    options = parser.parse_args()
    failed = False
    with (
        embedded_backends() as backends,
        app_server("seatlock.app:create_app", backends, options.workers) as base_url,
    ):
        callers = asyncio.run(_callers(base_url, backends))
        print(f"{'caller':<10} {'operations':>10} {'cases':>7} {'failures':>8}  links followed")
        for role, headers in callers.items():
            if options.role and role not in options.role:
                continue
            outcome = fuzzing.run(base_url, headers, max_examples=options.max_examples)
            if options.verbose or outcome.exit_code != 0:
                print(outcome.output)
            failed |= outcome.exit_code != 0
            print(
                f"{role:<10} {outcome.operations:>10} {outcome.cases:>7} {outcome.failures:>8}"
                f"  {sum(outcome.links.values())} ({len(outcome.links)} distinct)",
                flush=True,
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
