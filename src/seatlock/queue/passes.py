"""Queue passes: what an admitted buyer shows the hold route of a queued event.

A pass is a JWT signed with a key of its own (derived from the service's secret, so that
no access token can pass for one) and names its key in `kid`. It binds the event, the
account and the pass's number, and runs out with the buyer's shopping slot. A pass given
up by leaving the room is refused by its number, which the room keeps until the pass
would have run out.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import UTC, datetime

import jwt

from seatlock.errors import Forbidden
from seatlock.settings import Settings

PASS_AUDIENCE = "seatlock:queue-pass"
PASS_HEADER = "Queue-Pass"
_ALGORITHM = "HS256"


class QueuePassRequired(Forbidden):
    slug = "queue-pass-required"
    title = "A queue pass is required"


class Passes:
    """Signs and checks the passes of every event; one per process."""

    def __init__(self, settings: Settings) -> None:
        self._issuer = settings.jwt_issuer
        self._key = hmac.new(
            settings.jwt_secret.encode(), b"seatlock queue passes", "sha256"
        ).digest()
        # Names the key without revealing it, so that a pass of a rotated secret is told apart.
        self.key_id = hashlib.sha256(self._key).hexdigest()[:16]

    def drawn_place(self, event_id: uuid.UUID, account_id: uuid.UUID) -> int:
        """The place an account draws for an event's pre-sale shuffle, in [0, 2^40): random
        to anyone without the secret, and the same every time, so that leaving and joining
        again before the start draws nothing new."""
        message = f"{event_id}:{account_id}".encode()
        return int.from_bytes(hmac.new(self._key, message, "sha256").digest()[:5], "big")

    def issue(
        self, event_id: uuid.UUID, account_id: uuid.UUID, number: int, runs_out: datetime
    ) -> str:
        claims = {
            "iss": self._issuer,
            "aud": PASS_AUDIENCE,
            "sub": str(account_id),
            "event": str(event_id),
            "jti": str(number),
            "exp": int(runs_out.timestamp()),
        }
        return jwt.encode(claims, self._key, _ALGORITHM, headers={"kid": self.key_id})

    def number(self, token: str | None, event_id: uuid.UUID, account_id: uuid.UUID) -> int:
        """The number of a valid pass of this account for this event; QueuePassRequired
        for a missing, foreign, expired or forged one."""
        if not token:
            raise QueuePassRequired(
                f"this event is queued: join its queue and send your pass as {PASS_HEADER}"
            )
        try:
            if jwt.get_unverified_header(token).get("kid") != self.key_id:
                raise QueuePassRequired("this queue pass was signed with another key")
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[_ALGORITHM],
                audience=PASS_AUDIENCE,
                issuer=self._issuer,
                options={"require": ["exp", "sub", "jti", "event"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise QueuePassRequired("this queue pass has run out: join the queue again") from exc
        except jwt.InvalidTokenError as exc:
            raise QueuePassRequired("this is not a valid queue pass") from exc
        if claims["event"] != str(event_id) or claims["sub"] != str(account_id):
            raise QueuePassRequired("this queue pass is for another buyer or event")
        return int(claims["jti"])


def runs_out_at(runs_out_ms: int) -> datetime:
    return datetime.fromtimestamp(runs_out_ms / 1000, UTC)
