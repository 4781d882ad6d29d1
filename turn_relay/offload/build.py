"""Build the kernel offload's eBPF object from its C source with clang.

The object is not shipped: it is compiled on the machine that runs it (clang, the kernel UAPI
headers and libbpf's headers from the distribution: Debian's ``clang``, ``linux-libc-dev`` and
``libbpf-dev``). Its default place is a cache file named after a hash of the source and the
compiler's version, so a changed source or compiler gives a new object and a rebuild is never
needed by hand. ``-fdebug-prefix-map`` keeps the build directory out of the object, so the same
source and compiler give the same bytes from any clone.

Example::

    python -m turn_relay.offload.build              # builds into the cache, prints its path
    python -m turn_relay.offload.build -o obj.o     # builds into obj.o
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

__all__ = ["SOURCE", "BuildError", "build", "default_object_path", "main"]

#: The program's C source, installed with the package.
SOURCE: Final = Path(__file__).with_name("channel_forward.bpf.c")
#: Overrides where the object is built and looked for (a file path).
OBJECT_ENV: Final = "TURNKIT_OFFLOAD_OBJECT"


class BuildError(RuntimeError):
    """clang is missing or refused the source; the message says which and why."""


def _clang() -> str:
    clang = shutil.which("clang")
    if clang is None:
        raise BuildError("clang not found (Debian: apt-get install clang libbpf-dev)")
    return clang


def _multiarch_include() -> list[str]:
    """The UAPI ``asm/`` headers live in a per-architecture folder on Debian."""
    multiarch = sysconfig.get_config_var("MULTIARCH") or f"{platform.machine()}-linux-gnu"
    folder = Path("/usr/include") / str(multiarch)
    return [f"-I{folder}"] if folder.is_dir() else []


def _compiler_version(clang: str) -> str:
    result = subprocess.run([clang, "--version"], capture_output=True, text=True, check=False)
    return result.stdout.splitlines()[0] if result.stdout else "unknown"


def default_object_path() -> Path:
    """Where the object is built by default: ``$TURNKIT_OFFLOAD_OBJECT``, else the user's cache."""
    override = os.environ.get(OBJECT_ENV)
    if override:
        return Path(override)
    clang = shutil.which("clang") or "clang"
    digest = hashlib.sha256(SOURCE.read_bytes())
    digest.update(_compiler_version(clang).encode() if shutil.which("clang") else b"")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "turnkit" / "offload" / f"channel_forward-{digest.hexdigest()[:16]}.bpf.o"


def compile_command(clang: str, source: Path, output: Path) -> list[str]:
    return [
        clang,
        "-O2",
        "-g",
        "-target",
        "bpf",
        "-Wall",
        "-Werror",
        f"-fdebug-prefix-map={source.parent}=.",
        *_multiarch_include(),
        "-c",
        str(source),
        "-o",
        str(output),
    ]


def build(output: Path | None = None, source: Path = SOURCE) -> Path:
    """Compile ``source`` into ``output`` (default: `default_object_path`); returns the path.

    The object is written to a temporary file first and renamed, so a reader never sees half an
    object. Raises `BuildError` with clang's own message when it fails.
    """
    target = output or default_object_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    clang = _clang()
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        partial = Path(scratch) / target.name
        result = subprocess.run(
            compile_command(clang, source, partial), capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise BuildError(f"clang failed on {source.name}:\n{result.stderr.strip()}")
        partial.replace(target)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m turn_relay.offload.build",
        description="Build the relay's eBPF ChannelData offload object with clang.",
        epilog="example: python -m turn_relay.offload.build -o /var/lib/turn-relay/offload.o",
    )
    parser.add_argument(
        "-o", "--output", type=Path, help="object file to write (default: a cache path)"
    )
    args = parser.parse_args(argv)
    try:
        path = build(args.output)
    except BuildError as error:
        print(error, file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
