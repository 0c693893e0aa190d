"""The files shipped beside the code: the Lua scripts and the Alembic migrations.

A wheel carries them inside the package (`seatlock/lua`, `seatlock/migrations`); a checkout
or an editable install keeps them in the top-level folders of the same names.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]


def resource_dir(name: str) -> Path:
    packaged = files("seatlock") / name
    if packaged.is_dir():
        # An installed wheel is unpacked on disk, so its resources are plain paths.
        return Path(str(packaged))
    return CHECKOUT / name
