"""Fixtures of the ops tests: the service on a real socket, the one tests/availability uses."""

from __future__ import annotations

from tests.availability.conftest import live

__all__ = ["live"]
