"""The few libbpf calls the offload needs, through ctypes.

Why ctypes over libbpf: loading a BPF ELF object (BTF, map creation, relocations, the verifier
log) is exactly what libbpf is for, and Debian ships it (``libbpf1``, headers in ``libbpf-dev``).
No well-kept Python binding of it exists: PyPI's ``bpfmaps`` (0.0.8, 2022) only reads maps, and
BCC compiles C at run time with its own LLVM. So this module binds the handful of libbpf
functions used (object open/load/close, program and map lookup by name, map element
update/lookup/delete/iterate) and nothing else; map operations are libbpf's thin wrappers of the
bpf(2) syscall. libbpf's log (including the kernel verifier's) is captured, not printed, so a
refusal can be reported in one reason string.
"""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import errno
import os
import threading
from collections.abc import Iterator
from typing import Final

__all__ = ["BpfObject", "LibbpfError", "MapHandle", "load_library"]

_LOG_LINES: Final = 200
_BPF_ANY: Final = 0

_PrintFunction = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


class LibbpfError(OSError):
    """A libbpf call failed; ``log`` holds what libbpf (and the verifier) said meanwhile."""

    def __init__(self, code: int, what: str, log: tuple[str, ...] = ()) -> None:
        super().__init__(code, f"{what}: {os.strerror(code)}")
        self.what = what
        self.code = code
        self.log = log

    def __str__(self) -> str:
        return f"{self.what}: {os.strerror(self.code)}"


class _Library:
    """libbpf.so.1 with argument types declared, and its log routed into a ring of lines."""

    def __init__(self, path: str) -> None:
        self.dll = ctypes.CDLL(path, use_errno=True)
        self._libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self._libc.vsnprintf.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_char_p,
            ctypes.c_void_p,
        ]
        self.log: collections.deque[str] = collections.deque(maxlen=_LOG_LINES)
        self.lock = threading.Lock()
        self._declare()
        self._printer = _PrintFunction(self._print)  # kept alive as long as the library
        self.dll.libbpf_set_print(self._printer)

    def _declare(self) -> None:
        d = self.dll
        vp, cp, ci = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
        d.libbpf_set_print.argtypes = [_PrintFunction]
        d.libbpf_set_print.restype = vp
        d.bpf_object__open_file.argtypes = [cp, vp]
        d.bpf_object__open_file.restype = vp
        d.bpf_object__load.argtypes = [vp]
        d.bpf_object__load.restype = ci
        d.bpf_object__close.argtypes = [vp]
        d.bpf_object__close.restype = None
        d.bpf_object__find_program_by_name.argtypes = [vp, cp]
        d.bpf_object__find_program_by_name.restype = vp
        d.bpf_program__fd.argtypes = [vp]
        d.bpf_program__fd.restype = ci
        d.bpf_object__find_map_by_name.argtypes = [vp, cp]
        d.bpf_object__find_map_by_name.restype = vp
        for sized in ("bpf_map__fd", "bpf_map__key_size", "bpf_map__value_size"):
            getattr(d, sized).argtypes = [vp]
        d.bpf_map__fd.restype = ci
        d.bpf_map__key_size.restype = ctypes.c_uint32
        d.bpf_map__value_size.restype = ctypes.c_uint32
        d.bpf_map_update_elem.argtypes = [ci, vp, vp, ctypes.c_uint64]
        d.bpf_map_update_elem.restype = ci
        d.bpf_map_lookup_elem.argtypes = [ci, vp, vp]
        d.bpf_map_lookup_elem.restype = ci
        d.bpf_map_delete_elem.argtypes = [ci, vp]
        d.bpf_map_delete_elem.restype = ci
        d.bpf_map_get_next_key.argtypes = [ci, vp, vp]
        d.bpf_map_get_next_key.restype = ci

    def _print(self, level: int, fmt: bytes | None, args: int | None) -> int:
        if fmt is None:
            return 0
        buffer = ctypes.create_string_buffer(4096)
        self._libc.vsnprintf(buffer, len(buffer), fmt, args)
        for line in buffer.value.decode(errors="replace").splitlines():
            if line.strip():
                self.log.append(line.rstrip())
        return 0

    def take_log(self) -> tuple[str, ...]:
        lines = tuple(self.log)
        self.log.clear()
        return lines


_library: _Library | None = None
_library_lock = threading.Lock()


def load_library() -> _Library:
    """libbpf, loaded once; raises OSError when the shared library is not installed."""
    global _library
    with _library_lock:
        if _library is None:
            path = ctypes.util.find_library("bpf") or "libbpf.so.1"
            _library = _Library(path)
        return _library


def _check(result: int, what: str) -> int:
    """libbpf 1.x returns -errno (and sets errno) on failure."""
    if result < 0:
        raise LibbpfError(-result if result != -1 else ctypes.get_errno() or errno.EIO, what)
    return result


class MapHandle:
    """One BPF map by fd, with fixed key and value sizes (bytes in, bytes out)."""

    def __init__(self, library: _Library, fd: int, key_size: int, value_size: int) -> None:
        self._dll = library.dll
        self.fd = fd
        self.key_size = key_size
        self.value_size = value_size

    def _key(self, key: bytes) -> ctypes.Array[ctypes.c_char]:
        if len(key) != self.key_size:
            raise ValueError(f"key of {len(key)} bytes, map takes {self.key_size}")
        return ctypes.create_string_buffer(key, self.key_size)

    def update(self, key: bytes, value: bytes) -> None:
        if len(value) != self.value_size:
            raise ValueError(f"value of {len(value)} bytes, map takes {self.value_size}")
        buffer = ctypes.create_string_buffer(value, self.value_size)
        _check(
            self._dll.bpf_map_update_elem(self.fd, self._key(key), buffer, _BPF_ANY),
            "bpf_map_update_elem",
        )

    def lookup(self, key: bytes) -> bytes | None:
        buffer = ctypes.create_string_buffer(self.value_size)
        result = self._dll.bpf_map_lookup_elem(self.fd, self._key(key), buffer)
        if result == -errno.ENOENT or (result == -1 and ctypes.get_errno() == errno.ENOENT):
            return None
        _check(result, "bpf_map_lookup_elem")
        return buffer.raw

    def delete(self, key: bytes) -> bool:
        """False when there was no such key."""
        result = self._dll.bpf_map_delete_elem(self.fd, self._key(key))
        if result == -errno.ENOENT or (result == -1 and ctypes.get_errno() == errno.ENOENT):
            return False
        _check(result, "bpf_map_delete_elem")
        return True

    def keys(self) -> Iterator[bytes]:
        current: ctypes.Array[ctypes.c_char] | None = None
        following = ctypes.create_string_buffer(self.key_size)
        while True:
            result = self._dll.bpf_map_get_next_key(self.fd, current, following)
            if result == -errno.ENOENT or (result == -1 and ctypes.get_errno() == errno.ENOENT):
                return
            _check(result, "bpf_map_get_next_key")
            yield following.raw
            current = ctypes.create_string_buffer(following.raw, self.key_size)


class BpfObject:
    """A BPF ELF object opened and loaded into the kernel; `close` releases programs and maps."""

    def __init__(self, path: str) -> None:
        self._library = load_library()
        with self._library.lock:
            self._library.take_log()
            handle = self._library.dll.bpf_object__open_file(os.fsencode(path), None)
            if not handle:
                code = ctypes.get_errno() or errno.EINVAL
                raise LibbpfError(code, f"open {path}", self._library.take_log())
            result = self._library.dll.bpf_object__load(handle)
            if result < 0:
                log = self._library.take_log()
                self._library.dll.bpf_object__close(handle)
                raise LibbpfError(-result, f"load {path}", log)
            self._library.take_log()
        self._handle: int | None = handle

    def program_fd(self, name: str) -> int:
        program = self._library.dll.bpf_object__find_program_by_name(self._live(), name.encode())
        if not program:
            raise LibbpfError(errno.ENOENT, f"no program {name!r} in the object")
        return _check(self._library.dll.bpf_program__fd(program), f"fd of program {name!r}")

    def map(self, name: str, key_size: int, value_size: int) -> MapHandle:
        """The map ``name``; its key and value sizes must be the ones the caller packs."""
        dll = self._library.dll
        found = dll.bpf_object__find_map_by_name(self._live(), name.encode())
        if not found:
            raise LibbpfError(errno.ENOENT, f"no map {name!r} in the object")
        sizes = (dll.bpf_map__key_size(found), dll.bpf_map__value_size(found))
        if sizes != (key_size, value_size):
            raise LibbpfError(
                errno.EPROTO,
                f"map {name!r} has key/value sizes {sizes}, expected {(key_size, value_size)}",
            )
        fd = _check(dll.bpf_map__fd(found), f"fd of map {name!r}")
        return MapHandle(self._library, fd, key_size, value_size)

    def _live(self) -> int:
        if self._handle is None:
            raise LibbpfError(errno.EBADF, "the BPF object is closed")
        return self._handle

    def close(self) -> None:
        if self._handle is not None:
            self._library.dll.bpf_object__close(self._handle)
            self._handle = None
