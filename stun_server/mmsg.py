"""Many datagrams per system call: recvmmsg(2) and sendmmsg(2) through ctypes (Linux).

Python's socket module has no recvmmsg/sendmmsg. `DatagramBatch` keeps ``slots`` receive and
send slots in fixed buffers: `receive` fills up to ``slots`` datagrams with one call (blocking
for the first, MSG_WAITFORONE), `add_reply` queues an answer to the sender of a received slot
(the send slot points at that slot's socket address, so nothing is converted back), and `flush`
sends every queued answer with one call. Everything else (parsing, answering) stays in Python.

`available()` says whether the C library offers both calls; callers fall back to plain
``recvfrom`` / ``sendto`` otherwise.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct
import sys
from typing import Any

MSG_WAITFORONE = 0x10000
_SOCKADDR_SIZE: dict[int, int] = {socket.AF_INET: 16, socket.AF_INET6: 28}
_MAX_ADDRESS_CACHE = 4096


class _IoVec(ctypes.Structure):
    _fields_ = (("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t))


class _MsgHdr(ctypes.Structure):
    _fields_ = (
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.c_void_p),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    )


class _MMsgHdr(ctypes.Structure):
    _fields_ = (("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint))


_MMSG_SIZE = ctypes.sizeof(_MMsgHdr)
_IOVEC_SIZE = ctypes.sizeof(_IoVec)
_MSG_LEN_OFFSET = _MMsgHdr.msg_len.offset
_NAME_POINTER_OFFSET = _MsgHdr.msg_name.offset  # msg_hdr is the first member of mmsghdr
_IOV_LEN_OFFSET = _IoVec.iov_len.offset
_U32 = struct.Struct("I")
_POINTER = struct.Struct("P")
_SIZE = struct.Struct("N")


def _libc_functions() -> tuple[Any, Any] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the C library already loaded
        recvmmsg, sendmmsg = libc.recvmmsg, libc.sendmmsg
    except (OSError, AttributeError):
        return None
    recvmmsg.argtypes = (
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_void_p,
    )
    recvmmsg.restype = ctypes.c_int
    sendmmsg.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int)
    sendmmsg.restype = ctypes.c_int
    return recvmmsg, sendmmsg


_FUNCTIONS = _libc_functions()


def available() -> bool:
    return _FUNCTIONS is not None


def _buffer_address(buffer: bytearray) -> int:
    return ctypes.addressof((ctypes.c_char * len(buffer)).from_buffer(buffer))


class DatagramBatch:
    """Receive and send slots for one socket of address family ``family``."""

    def __init__(self, family: int, slots: int, recv_size: int, send_size: int) -> None:
        if _FUNCTIONS is None:
            raise OSError(errno.ENOSYS, "recvmmsg/sendmmsg are not available")
        self._recvmmsg, self._sendmmsg = _FUNCTIONS
        self.family = family
        self.slots = slots
        self.recv_size = recv_size
        self.send_size = send_size
        self._name_size = _SOCKADDR_SIZE[family]
        self._recv_data = bytearray(slots * recv_size)
        self._send_data = bytearray(slots * send_size)
        self._names = bytearray(slots * self._name_size)
        self._recv_headers = bytearray(slots * _MMSG_SIZE)
        self._send_headers = bytearray(slots * _MMSG_SIZE)
        self._recv_iovecs = bytearray(slots * _IOVEC_SIZE)
        self._send_iovecs = bytearray(slots * _IOVEC_SIZE)
        self._recv_view = memoryview(self._recv_data)
        self._names_view = memoryview(self._names)
        self._send_view = memoryview(self._send_data)
        self._name_pointers = [
            _buffer_address(self._names) + i * self._name_size for i in range(slots)
        ]
        self._recv_headers_pointer = _buffer_address(self._recv_headers)
        self._send_headers_pointer = _buffer_address(self._send_headers)
        self._link(self._recv_headers, self._recv_iovecs, self._recv_data, recv_size)
        self._link(self._send_headers, self._send_iovecs, self._send_data, send_size)
        self._queued = 0
        self._addresses: dict[bytes, tuple[str, int]] = {}

    def _link(self, headers: bytearray, iovecs: bytearray, data: bytearray, slot_size: int) -> None:
        """Point header i at socket address i and at iovec i, and iovec i at data slot i."""
        header_array = (_MMsgHdr * self.slots).from_buffer(headers)
        iovec_array = (_IoVec * self.slots).from_buffer(iovecs)
        data_pointer, iovec_pointer = _buffer_address(data), _buffer_address(iovecs)
        for i in range(self.slots):
            iovec_array[i].iov_base = data_pointer + i * slot_size
            iovec_array[i].iov_len = slot_size
            message = header_array[i].msg_hdr
            message.msg_name = self._name_pointers[i]
            message.msg_namelen = self._name_size
            message.msg_iov = iovec_pointer + i * _IOVEC_SIZE
            message.msg_iovlen = 1

    # ------------------------------------------------------------------ receiving

    def receive(self, fd: int) -> int:
        """Wait for at least one datagram; the number of slots filled. Raises OSError."""
        count: int = self._recvmmsg(
            fd, self._recv_headers_pointer, self.slots, MSG_WAITFORONE, None
        )
        if count < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
        return count

    def payload(self, index: int) -> bytes:
        size = _U32.unpack_from(self._recv_headers, index * _MMSG_SIZE + _MSG_LEN_OFFSET)[0]
        start = index * self.recv_size
        return bytes(self._recv_view[start : start + size])

    def source(self, index: int) -> tuple[str, int]:
        """The sender of slot ``index`` as (ip, port)."""
        start, names = index * self._name_size, self._names_view
        if self.family == socket.AF_INET:  # port, then address (sockaddr_in)
            key = bytes(names[start + 2 : start + 8])
        else:  # port, flow info, address (sockaddr_in6)
            key = bytes(names[start + 2 : start + 4]) + bytes(names[start + 8 : start + 24])
        address = self._addresses.get(key)
        if address is None:
            address = self._learn_address(key)
        return address

    def _learn_address(self, key: bytes) -> tuple[str, int]:
        if len(self._addresses) >= _MAX_ADDRESS_CACHE:
            self._addresses.clear()
        ip = socket.inet_ntop(self.family, key[2:])
        address = self._addresses[key] = (ip, int.from_bytes(key[:2], "big"))
        return address

    # ------------------------------------------------------------------ sending

    def add_reply(self, index: int, reply: bytes) -> bool:
        """Queue ``reply`` to the sender of received slot ``index``; False if it does not fit."""
        size = len(reply)
        slot = self._queued
        if size > self.send_size or slot >= self.slots:
            return False
        start = slot * self.send_size
        self._send_view[start : start + size] = reply
        _SIZE.pack_into(self._send_iovecs, slot * _IOVEC_SIZE + _IOV_LEN_OFFSET, size)
        header = slot * _MMSG_SIZE + _NAME_POINTER_OFFSET
        _POINTER.pack_into(self._send_headers, header, self._name_pointers[index])
        self._queued = slot + 1
        return True

    def flush(self, fd: int) -> list[OSError]:
        """Send every queued reply; the errors of those that failed (they are dropped)."""
        errors: list[OSError] = []
        start, queued = 0, self._queued
        self._queued = 0
        while start < queued:
            pointer = self._send_headers_pointer + start * _MMSG_SIZE
            sent: int = self._sendmmsg(fd, pointer, queued - start, 0)
            if sent <= 0:  # the first message failed: report it and go past it
                code = ctypes.get_errno()
                errors.append(OSError(code, os.strerror(code)))
                sent = 1
            start += sent
        return errors
