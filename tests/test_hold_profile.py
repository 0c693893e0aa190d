"""The hold profile's sorting of py-spy samples into parts (bench/hold_profile.py)."""

from __future__ import annotations

import pytest

from bench import hold_profile

RUN = "Runner.run (asyncio/runners.py:118)"
HANDLE = "HTTPRoute.handle (litestar/routes/http.py:78)"
SCRIPT = "TimedScript.__call__ (seatlock/ops/metrics.py:214)"
PIPELINE = "ScriptBatches._send (seatlock/script_batches.py:95)"
HOLD = "create_hold (seatlock/holds/routes.py:91)"
GUARD = "BaseRouteHandler.authorize_connection (litestar/handlers/base.py:517)"
LOG = "RequestObserver._observe (seatlock/ops/request_log.py:186)"


def test_each_sample_goes_to_the_first_part_it_passes_through() -> None:
    collapsed = "\n".join(
        [
            f"{RUN};{HANDLE};{HOLD};{SCRIPT} 3",  # the script call inside the handler
            f"{RUN};{PIPELINE} 1",  # the pipeline of calls, in a task of its own
            f"{RUN};{HANDLE};{HOLD} 2",
            f"{RUN};{HANDLE};{GUARD} 1",
            f"{RUN};{LOG} 1",
            f"{RUN};{HANDLE} 1",
            f"{RUN} 1",
            "",
        ]
    )

    parts = hold_profile.parts_of(collapsed)

    assert list(parts) == [name for name, _ in hold_profile.PARTS] + [hold_profile.REST]
    assert [round(share * 10) for share in parts.values()] == [4, 2, 1, 1, 1, 1]
    assert sum(parts.values()) == pytest.approx(1.0)
