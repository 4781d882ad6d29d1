"""When the program cannot load, the offload says why in one line: ``open`` raises
`OffloadUnavailable`, ``auto`` returns no offload and the reason, ``on`` raises, ``off`` never
loads. Nothing stays attached after a failed open."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from turn_relay.offload import (
    KernelOffload,
    OffloadMode,
    OffloadUnavailable,
    missing_capability,
    start_offload,
)
from turn_relay.offload.build import BuildError, build

from .topology import RELAY_INTERFACES, Topology, inside

#: Reads past the end of the packet without a bounds check: the verifier must refuse it.
_UNCHECKED_READ = """
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("tc")
int channel_forward(struct __sk_buff *skb)
{
	unsigned char *data = (unsigned char *)(long)skb->data;
	return data[100];
}
char LICENSE[] SEC("license") = "Apache-2.0";
"""


@pytest.fixture
def corrupt_object(tmp_path: Path, bpf_object: Path) -> Path:
    """The real object with its middle overwritten: an ELF libbpf cannot use."""
    blob = bytearray(bpf_object.read_bytes())
    middle = len(blob) // 2
    blob[64:middle] = b"\xa5" * (middle - 64)
    path = tmp_path / "corrupt.bpf.o"
    path.write_bytes(bytes(blob))
    return path


@pytest.fixture
def refused_object(tmp_path: Path, offload_ready: None) -> Path:
    source = tmp_path / "unchecked.bpf.c"
    source.write_text(_UNCHECKED_READ)
    return build(tmp_path / "unchecked.bpf.o", source=source)


def _qdiscs(lab: Topology) -> str:
    return subprocess.run(
        ["tc", "-n", lab.relay, "qdisc", "show"], capture_output=True, text=True, check=True
    ).stdout


def test_corrupt_object_is_unavailable_with_a_reason(lab: Topology, corrupt_object: Path) -> None:
    with pytest.raises(OffloadUnavailable) as raised, inside(lab.relay):
        KernelOffload.open(RELAY_INTERFACES, corrupt_object)
    assert raised.value.reason.startswith("kernel refused the program: ")
    assert str(corrupt_object) in raised.value.reason
    assert "clsact" not in _qdiscs(lab)


def test_verifier_refusal_names_the_verifiers_complaint(
    lab: Topology, refused_object: Path
) -> None:
    with pytest.raises(OffloadUnavailable) as raised, inside(lab.relay):
        KernelOffload.open(RELAY_INTERFACES, refused_object)
    assert raised.value.reason.startswith("kernel refused the program: load ")
    assert "outside of the packet" in raised.value.reason  # the verifier's words
    assert "\n" not in raised.value.reason
    assert "clsact" not in _qdiscs(lab)


def test_missing_object_says_how_to_build_it(lab: Topology, tmp_path: Path) -> None:
    with inside(lab.relay), pytest.raises(OffloadUnavailable) as raised:
        KernelOffload.open(RELAY_INTERFACES, tmp_path / "absent.bpf.o")
    assert raised.value.reason == (
        f"no object: {tmp_path / 'absent.bpf.o'} does not exist "
        "(build it: python -m turn_relay.offload.build)"
    )


def test_unknown_interface_detaches_the_ones_already_attached(
    lab: Topology, bpf_object: Path
) -> None:
    with pytest.raises(OffloadUnavailable) as raised, inside(lab.relay):
        KernelOffload.open(["r0", "nosuch0"], bpf_object)
    assert raised.value.reason == "no interface named 'nosuch0'"
    assert "clsact" not in _qdiscs(lab)


def test_auto_falls_back_with_the_reason_and_on_raises(lab: Topology, corrupt_object: Path) -> None:
    with inside(lab.relay):
        started = start_offload(OffloadMode.AUTO, RELAY_INTERFACES, corrupt_object)
        assert started.offload is None
        assert started.reason.startswith("kernel refused the program: ")
        with pytest.raises(OffloadUnavailable, match="kernel refused the program"):
            start_offload(OffloadMode.ON, RELAY_INTERFACES, corrupt_object)


def test_auto_starts_when_it_can(lab: Topology, bpf_object: Path) -> None:
    with inside(lab.relay):
        started = start_offload(OffloadMode.AUTO, RELAY_INTERFACES, bpf_object)
    assert started.offload is not None
    try:
        assert started.reason == "kernel offload on r0, r1"
        assert _qdiscs(lab).count("clsact") == 2
    finally:
        started.offload.close()
    assert "clsact" not in _qdiscs(lab)


def test_off_never_loads(tmp_path: Path) -> None:
    started = start_offload(OffloadMode.OFF, ["lo"], tmp_path / "absent.bpf.o")
    assert started == (None, "kernel offload is off")


def test_missing_capability_is_read_from_the_status_file(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("Name:\tx\nCapEff:\t0000000000000000\n")
    assert missing_capability(status) == "CAP_NET_ADMIN and CAP_BPF"
    status.write_text("CapEff:\t0000008000001000\n")  # CAP_BPF (39) and CAP_NET_ADMIN (12)
    assert missing_capability(status) is None
    status.write_text("CapEff:\t0000000000201000\n")  # CAP_SYS_ADMIN (21) stands for CAP_BPF
    assert missing_capability(status) is None


def test_no_capability_is_the_reason(monkeypatch: pytest.MonkeyPatch, bpf_object: Path) -> None:
    import turn_relay.offload.kernel as kernel

    monkeypatch.setattr(kernel, "missing_capability", lambda: "CAP_BPF")
    started = start_offload(OffloadMode.AUTO, ["lo"], bpf_object)
    assert started == (None, "no capability: needs root or CAP_BPF")


def test_build_failure_carries_clangs_message(tmp_path: Path, offload_ready: None) -> None:
    source = tmp_path / "broken.bpf.c"
    source.write_text("int broken(void) { return undeclared; }\n")
    with pytest.raises(BuildError, match="undeclared"):
        build(tmp_path / "broken.bpf.o", source=source)


def test_build_is_reproducible(tmp_path: Path, offload_ready: None) -> None:
    first = build(tmp_path / "a" / "one.bpf.o")
    second = build(tmp_path / "b" / "one.bpf.o")
    assert first.read_bytes() == second.read_bytes()
