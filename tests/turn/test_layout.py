"""The relay's folders are its layers, and imports point one way between them.

Layers, lowest first: auth < core < config < api < shell < cli. A module may import its own
package and any package below it, never one above; ``core`` and ``auth`` import no I/O. Every
module of ``turn_relay`` is walked (ast), so a new file is checked without being listed here.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import turn_relay

ROOT = Path(turn_relay.__file__).parent
LAYERS = ("auth", "core", "config", "reports", "api", "offload", "fleet", "shell", "cli")
RANK = {name: rank for rank, name in enumerate(LAYERS)}
RANK["offload"] = RANK["fleet"] = RANK["reports"] = RANK["config"]  # beside config, below api
NO_IO = {"asyncio", "socket", "time", "selectors", "ssl", "aiohttp", "uvloop", "tomllib"}
IO_FREE_LAYERS = {"auth", "core"}
OUTSIDE = {"rtccheck", "bench", "tests"}  # the relay never imports the tools built on it


def layer_of(module: str) -> str:
    """``turn_relay.core.table`` -> ``core``; ``turn_relay.cli`` -> ``cli``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Absolute names of everything ``path`` imports (relative imports resolved)."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def relay_modules() -> list[Path]:
    return sorted(ROOT.rglob("*.py"))


def wrong_way_arrows(module: str, imports: set[str]) -> list[str]:
    """Every import of ``module`` that points up a layer, into the tools, or to I/O from below."""
    source = layer_of(module)
    wrong: list[str] = []
    for target in sorted(imports):
        top = target.split(".")[0]
        if top in OUTSIDE:
            wrong.append(f"{target} (the relay never imports {top})")
        if source in IO_FREE_LAYERS and top in NO_IO:
            wrong.append(f"{target} (no I/O in {source})")
        if top != "turn_relay" or target.count(".") < 1:
            continue
        layer = layer_of(target)
        if layer in RANK and source in RANK and RANK[layer] > RANK[source]:
            wrong.append(f"{target} ({source} is below {layer})")
    return wrong


@pytest.mark.parametrize("path", relay_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down_the_layers(path: Path) -> None:
    assert wrong_way_arrows(module_name(path), imports_of(path)) == []


def test_every_module_sits_in_a_known_layer() -> None:
    unknown = {
        module_name(path)
        for path in relay_modules()
        if path.parent != ROOT and layer_of(module_name(path)) not in RANK
    }
    top_level = {path.name for path in ROOT.glob("*.py")}
    assert unknown == set()
    assert top_level == {"__init__.py", "cli.py"}


def module_graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in relay_modules()}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph[name] = {t for t in imports_of(path) if t in modules and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as a list of modules, or [] (packages' ``__init__`` re-exports count)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_no_module_imports_itself_round_a_cycle() -> None:
    graph = module_graph()
    for package, children in list(graph.items()):  # a package's __init__ is not a cycle with
        graph[package] = {c for c in children if not c.startswith(package + ".")}  # its parts
    assert find_cycle(graph) == []


def test_an_arrow_the_wrong_way_is_caught() -> None:
    """The checker itself: up-layer, I/O-from-core, into-the-tools and cycles are all found."""
    assert wrong_way_arrows("turn_relay.core.relay", {"turn_relay.shell.server", "asyncio"}) == [
        "asyncio (no I/O in core)",
        "turn_relay.shell.server (core is below shell)",
    ]
    assert wrong_way_arrows("turn_relay.auth.nonce", {"turn_relay.core.table"}) == [
        "turn_relay.core.table (auth is below core)"
    ]
    assert wrong_way_arrows("turn_relay.api.app", {"rtccheck.cli"}) == [
        "rtccheck.cli (the relay never imports rtccheck)"
    ]
    assert wrong_way_arrows("turn_relay.shell.server", {"turn_relay.api.app", "asyncio"}) == []
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_importing_the_core_loads_no_event_loop_or_sockets() -> None:
    code = (
        "import sys, turn_relay.core.relay, turn_relay.auth.authenticate; "
        "print(sorted(m for m in ('asyncio', 'socket', 'selectors', 'aiohttp')"
        " if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
