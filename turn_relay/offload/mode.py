"""``--kernel-offload off|auto|on``: whether to start the offload, and what to say if not."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from .kernel import KernelOffload, OffloadUnavailable

__all__ = ["OffloadMode", "OffloadStart", "start_offload"]


class OffloadMode(enum.Enum):
    OFF = "off"  # userspace only
    AUTO = "auto"  # the kernel when it can, else userspace with a reason
    ON = "on"  # the kernel or nothing: failing to start is an error


class OffloadStart(NamedTuple):
    """The running offload, or None and the one-line reason the relay runs in userspace."""

    offload: KernelOffload | None
    reason: str


def start_offload(
    mode: OffloadMode, interfaces: Iterable[str], object_path: Path | str
) -> OffloadStart:
    """Start the offload as ``mode`` says; with ``ON`` a failure raises `OffloadUnavailable`."""
    if mode is OffloadMode.OFF:
        return OffloadStart(None, "kernel offload is off")
    try:
        offload = KernelOffload.open(interfaces, object_path)
    except OffloadUnavailable as error:
        if mode is OffloadMode.ON:
            raise
        return OffloadStart(None, error.reason)
    return OffloadStart(offload, f"kernel offload on {', '.join(offload.interfaces)}")
