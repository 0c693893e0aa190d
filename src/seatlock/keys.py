"""Every Redis key Seatlock uses is built here, and nowhere else.

Keys of an event carry the hash tag `{<event_id>}` so that all of them live on one
Redis Cluster slot and one script can touch them atomically.
"""

from __future__ import annotations

import hashlib


def _digest(value: str) -> str:
    # Emails and addresses are hashed so that keys never carry personal data.
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def login_failures_for_account(email: str) -> str:
    return f"seatlock:login:account:{_digest(email)}"


def login_failures_for_address(address: str) -> str:
    return f"seatlock:login:address:{_digest(address)}"
