"""The registry of payment providers: which adapter serves each payment method."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import httpx

from seatlock.models import PaymentMethod
from seatlock.payments.providers.base import PaymentProvider
from seatlock.payments.providers.esewa import Esewa
from seatlock.payments.providers.khalti import Khalti
from seatlock.payments.providers.sandbox import Sandbox
from seatlock.payments.providers.stripe import Stripe
from seatlock.settings import Settings

# The name each provider goes by in its webhook's route, whole, as the route states it.
PROVIDER_NAME_PATTERN: Final = f"^(?:{'|'.join(p.name for p in (Sandbox, Stripe, Khalti, Esewa))})$"


def build_providers(
    settings: Settings, http: httpx.AsyncClient
) -> dict[PaymentMethod, PaymentProvider]:
    """The provider of each payment method: its real adapter where its keys are configured,
    the sandbox otherwise."""
    adapters: dict[PaymentMethod, Callable[[], PaymentProvider]] = {
        PaymentMethod.CARD: lambda: Stripe(settings, http),
        PaymentMethod.KHALTI: lambda: Khalti(settings, http),
        PaymentMethod.ESEWA: lambda: Esewa(settings, http),
    }
    sandbox = Sandbox(settings)
    return {
        method: adapters[method]() if settings.payment_keys[method] else sandbox
        for method in PaymentMethod
    }
