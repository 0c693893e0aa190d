"""The service's Lua scripts, shipped as package data (see `seatlock.resources`): their
sources, with the helpers they share in front."""

from __future__ import annotations

from seatlock.resources import resource_dir

LUA_DIR = resource_dir("lua")


def script_source(name: str) -> str:
    # Redis scripts cannot import: the helpers they share go in front of each one.
    library = (LUA_DIR / "lib" / "seat_changes.lua").read_text()
    return library + (LUA_DIR / f"{name}.lua").read_text()
