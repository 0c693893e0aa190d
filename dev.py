"""Bootstrap for a fresh clone: `python3 dev.py serve` or `python3 dev.py test`.

Creates .venv beside this file, installs the project into it (again only when
pyproject.toml changes), then runs the service or the checks and the test suite.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def _install(extra: str) -> None:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    stamp = VENV / f".installed-{extra or 'base'}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    # Otherwise the next half minute is silent: say what it is spent on.
    why = "pyproject.toml changed" if stamp.exists() else "first run, about 30 s"
    what = "the project and its test tools" if extra else "the project"
    print(f"installing {what} into .venv ({why})…", flush=True)
    if not (BIN / "python").exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    target = f"{ROOT}[{extra}]" if extra else str(ROOT)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "-e", target], check=True)  # noqa: S603
    stamp.write_text(digest)


def _run(*command: str) -> None:
    result = subprocess.run([str(BIN / command[0]), *command[1:]], cwd=ROOT, check=False)  # noqa: S603
    if result.returncode != 0:
        sys.exit(result.returncode)


def serve() -> None:
    _install("")
    os.execv(BIN / "seatlock", [str(BIN / "seatlock"), "serve"])  # noqa: S606


def _processes() -> list[str]:
    """Two test processes (a file each at a time), each starting its own embedded servers;
    one process when the tests are pointed at shared servers, which they would clobber."""
    if os.environ.get("TEST_DATABASE_URL") or os.environ.get("TEST_REDIS_URL"):
        return []
    return ["-n", "2", "--dist", "loadfile"]


def test(pytest_args: list[str]) -> None:
    _install("test")
    _run("ruff", "check", ".")
    _run("ruff", "format", "--check", ".")
    _run("mypy")
    _run("pytest", *_processes(), *pytest_args)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in {"serve", "test"}:
        sys.exit("usage: python3 dev.py serve | test [pytest arguments]")
    if sys.argv[1] == "serve":
        serve()
    else:
        test(sys.argv[2:])


if __name__ == "__main__":
    main()
