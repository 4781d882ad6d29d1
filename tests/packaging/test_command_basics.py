"""The three commands agree on the basics, run as installed: `--version` from the package
metadata, `-h` as `--help`, and `example-config` printing the shipped example exactly."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
CONFIGS = Path(__file__).resolve().parents[2] / "configs"
COMMANDS = ("turn-relay", "stun-server", "rtccheck")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]], check=False, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_version_comes_from_the_package_metadata(command: str) -> None:
    done = run(command, "--version")
    assert (done.returncode, done.stdout) == (
        0,
        f"{command}, version {metadata.version('turnkit')}\n",
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_short_help_is_the_long_help(command: str) -> None:
    short, long = run(command, "-h"), run(command, "--help")
    assert short.returncode == long.returncode == 0
    assert short.stdout == long.stdout
    assert "Usage:" in short.stdout


@pytest.mark.parametrize(
    ("command", "example"),
    [("turn-relay", "turn_relay.example.toml"), ("stun-server", "stun_server.example.toml")],
)
def test_example_config_prints_the_shipped_example(command: str, example: str) -> None:
    done = run(command, "example-config")
    assert done.returncode == 0
    assert done.stdout == (CONFIGS / example).read_text()
    assert (CONFIGS / example).is_symlink()  # one source: the file inside the package


@pytest.mark.parametrize(
    "args",
    [("turn-relay", "--help"), ("turn-relay", "serve", "--help"), ("stun-server", "--help")],
)
def test_help_points_at_example_config_not_at_a_repo_path(args: tuple[str, ...]) -> None:
    text = run(*args).stdout
    assert f"{args[0]} example-config" in text
    assert "configs/" not in text
