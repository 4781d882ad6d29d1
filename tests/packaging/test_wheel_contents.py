"""The wheel builds with the oldest setuptools pyproject.toml declares, and carries what the
commands need at run time: the example configs, py.typed, LICENSE and the license expression.

The build runs offline (`pip wheel --no-index --no-build-isolation`) in `.venv/build-floor`,
which scripts/bootstrap.sh makes with exactly the declared floor."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FLOOR_VENV = REPO / ".venv" / "build-floor"
_NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"
)


def declared_floor() -> str:
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
    (floor,) = (m.group(1) for r in requires if (m := re.fullmatch(r"setuptools>=([\w.]+)", r)))
    return floor


def floor_python() -> Path:
    python = FLOOR_VENV / "bin" / "python"
    if not python.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{FLOOR_VENV} is missing: scripts/bootstrap.sh makes it")
        pytest.skip(f"{FLOOR_VENV} is missing: run scripts/bootstrap.sh")
    return python


def test_the_floor_is_the_oldest_setuptools_that_takes_a_license_expression() -> None:
    # 76.1 refuses `license = "Apache-2.0"` (PEP 639); 77.0.0 is not on PyPI; 77.0.1 builds.
    assert declared_floor() == "77.0.1"


@pytest.mark.slow
def test_wheel_built_with_the_declared_floor_carries_configs_types_and_license(
    tmp_path: Path,
) -> None:
    python = floor_python()
    version = subprocess.run(
        [python, "-c", "import setuptools; print(setuptools.__version__)"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert version == declared_floor()
    source = tmp_path / "src"
    shutil.copytree(REPO, source, symlinks=True, ignore=_NOT_SOURCES)
    built = subprocess.run(
        [python, "-m", "pip", "wheel", "--no-deps", "--no-index", "--no-build-isolation",
         "-q", "-w", tmp_path / "dist", source],
        check=False, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("turnkit-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (dist_info,) = {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}
        metadata = archive.read(f"{dist_info}/METADATA").decode()
        shipped = {
            name: archive.read(name)
            for name in ("turn_relay/config/turn_relay.example.toml",
                         "stun_server/stun_server.example.toml")
        }  # fmt: skip
        license_text = archive.read(f"{dist_info}/licenses/LICENSE").decode()
    for package in ("stun_server", "turn_relay", "rtccheck"):
        assert f"{package}/py.typed" in names
    assert (
        shipped["turn_relay/config/turn_relay.example.toml"]
        == (REPO / "configs" / "turn_relay.example.toml").read_bytes()
    )
    assert (
        shipped["stun_server/stun_server.example.toml"]
        == (REPO / "configs" / "stun_server.example.toml").read_bytes()
    )
    assert "License-Expression: Apache-2.0" in metadata.splitlines()
    assert "License-File: LICENSE" in metadata.splitlines()
    assert license_text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
