"""The core stays sans-I/O: its modules import no asyncio, socket or time, nor the shell."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import turn_relay

CORE_MODULES = [
    "actions", "allocate", "allocation", "authenticate", "bandwidth", "core", "fastpath",
    "metrics", "peers", "ports", "responses", "settings", "table",
]  # fmt: skip
FORBIDDEN = {"asyncio", "socket", "time", "selectors", "ssl", "aiohttp", "uvloop"}
SHELL = {"server", "datagrams", "streams", "runner", "cli", "api", "assembly"}


def imported(module: str) -> set[str]:
    source = (Path(turn_relay.__file__).parent / f"{module}.py").read_text()
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add((node.module or "").split(".")[0])  # relative: ".table" -> "table"
    return names


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_imports_no_io(module: str) -> None:
    names = imported(module)
    assert not names & FORBIDDEN
    assert not names & SHELL


def test_importing_the_core_loads_no_event_loop_or_sockets() -> None:
    code = (
        "import sys, turn_relay.core; "
        "print(sorted(m for m in ('asyncio', 'socket', 'selectors') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
