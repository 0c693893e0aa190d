"""Schemathesis's command line against a running service, as one caller: the statuses that
count as domain answers (shared with the suite's in-process fuzz), and what a run reports
(operations, cases, failures, and the OpenAPI links its stateful phase followed)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

# Domain refusals of well-formed requests (a hold of a seat someone else holds, a booking
# of a hold that is gone) are not the document's fault.
ACCEPTED: Final = ["2xx", "3xx", "401", "403", "404", "409", "410", "422", "429"]
# How a request the document refuses may be refused: schemathesis's list, and 413 for a
# body past the size the service reads (an oversized array is one).
REFUSED: Final = [
    *("400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"),
    "5xx",
]
# Ends every session of the caller but the current one: a fuzzed caller whose token is
# minted has none to end, and a registered one would lose its refresh tokens mid-run.
EXCLUDED: Final = ("endOtherSessions",)


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    operations: int
    cases: int
    failures: int
    # How often the stateful phase followed each link, by schemathesis's name for it:
    # "POST /api/events/{event_id}/holds -> [201] bookHold -> POST /api/bookings".
    links: Counter[str]
    output: str


def _config(directory: Path, parameters: dict[str, str]) -> Path:
    path = directory / "schemathesis.toml"
    # TOML's basic strings read as JSON's.
    lines = [
        "[checks.positive_data_acceptance]",
        f"expected-statuses = {json.dumps(ACCEPTED)}",
        "[checks.negative_data_rejection]",
        f"expected-statuses = {json.dumps(REFUSED)}",
        "[parameters]",
        *(f"{json.dumps(name)} = {json.dumps(value)}" for name, value in parameters.items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _links(ndjson: Path) -> Counter[str]:
    followed: Counter[str] = Counter()
    for line in ndjson.read_text().splitlines():
        scenario = json.loads(line).get("ScenarioFinished")
        if scenario is None or scenario.get("phase") != "stateful":
            continue
        for case in scenario["recorder"].get("cases", {}).values():
            if case.get("transition") is not None:
                followed[case["transition"]["id"]] += 1
    return followed


def run(
    base_url: str,
    headers: dict[str, str],
    *,
    phases: Sequence[str] = ("examples", "coverage", "fuzzing", "stateful"),
    max_examples: int = 10,
    timeout: float = 10,
    operations: Sequence[str] = (),
    parameters: dict[str, str] | None = None,
) -> Outcome:
    """One run of `st run` with every check, on every operation or on `operations` (by
    operationId); `parameters` gives values of its own ("query.q": a search that finds
    something). Deterministic generation, so a failure found is found again (only the
    stateful phase's choice of links draws on true randomness)."""
    with tempfile.TemporaryDirectory(prefix="seatlock-fuzz-") as place:
        directory = Path(place)
        command = [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(_config(directory, parameters or {})),
            "run",
            f"{base_url}/schema/openapi.json",
            "--checks",
            "all",
            "--phases",
            ",".join(phases),
            "--max-examples",
            str(max_examples),
            # The summary says a seed goes unused in deterministic mode; the stateful
            # phase's scenarios still follow it.
            "--seed",
            "15",
            "--generation-deterministic",
            "--request-timeout",
            str(timeout),
            "--workers",
            "1",
            "--no-color",
            f"--report-json-path={directory / 'report.json'}",
            f"--report-ndjson-path={directory / 'events.ndjson'}",
            # A given value takes the place of a generated invalid one, so that a case meant
            # to be refused is not: not the service's fault.
            *(["--exclude-checks=negative_data_rejection"] if parameters else []),
            *(f"--include-operation-id={name}" for name in operations),
            *(f"--exclude-operation-id={name}" for name in EXCLUDED),
            *(f"--header={name}: {value}" for name, value in headers.items()),
        ]
        # In the throwaway directory: schemathesis keeps what it found in its working one.
        done = subprocess.run(  # noqa: S603
            command, cwd=directory, capture_output=True, text=True, check=False
        )
        if not (directory / "report.json").exists():
            raise RuntimeError(f"schemathesis did not run:\n{done.stdout}{done.stderr}")
        report = json.loads((directory / "report.json").read_text())
        return Outcome(
            exit_code=done.returncode,
            operations=report["operations"]["tested"],
            cases=report["test_cases"]["generated"],
            failures=report["test_cases"]["unique_failures"],
            links=_links(directory / "events.ndjson"),
            output=done.stdout + done.stderr,
        )
