"""dev.py, the bootstrap of a fresh clone: it says what it is doing before the silent
install, and installs again only when pyproject.toml changes."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

DEV = Path(__file__).resolve().parents[1] / "dev.py"


@pytest.fixture
def dev(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("dev_under_test", DEV)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    venv_dir = tmp_path / ".venv"
    monkeypatch.setattr(module, "ROOT", tmp_path)
    monkeypatch.setattr(module, "VENV", venv_dir)
    monkeypatch.setattr(module, "BIN", venv_dir / "bin")
    return module


def test_the_install_is_announced_before_pip_runs(
    dev: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    said_before_pip: list[str] = []

    def run(command: list[str], **_: Any) -> subprocess.CompletedProcess[bytes]:
        said_before_pip.append(capsys.readouterr().out)
        return subprocess.CompletedProcess(command, 0)

    def create(_: Any, env_dir: Path) -> None:
        (Path(env_dir) / "bin").mkdir(parents=True)
        (Path(env_dir) / "bin" / "python").write_text("")

    monkeypatch.setattr(dev.subprocess, "run", run)
    monkeypatch.setattr(dev.venv.EnvBuilder, "create", create)

    dev._install("test")
    assert said_before_pip == [
        "installing the project and its test tools into .venv (first run, about 30 s)…\n"
    ]
    # Installed and unchanged: nothing to do, nothing said.
    dev._install("test")
    assert len(said_before_pip) == 1
    assert capsys.readouterr().out == ""
    (dev.ROOT / "pyproject.toml").write_text("[project]\nname = 'y'\n")
    dev._install("")
    # The service's own install has a stamp of its own.
    assert said_before_pip[1] == "installing the project into .venv (first run, about 30 s)…\n"
    dev._install("test")
    assert said_before_pip[2].endswith("into .venv (pyproject.toml changed)…\n")
