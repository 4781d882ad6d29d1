"""packaging/systemd/*.service pass `systemd-analyze verify` (no running systemd needed) and
keep the sandbox and limits the docs promise.

verify checks that ExecStart= names an executable, so the test verifies a copy whose
/opt/turnkit/venv/bin/ is this venv's bin directory; `--man=no` skips the Documentation= man
page look-up. verify exits 0 on unknown keys and bad values (it only prints them), so any
output fails the test too."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "packaging" / "systemd"
INSTALLED_BIN = "/opt/turnkit/venv/bin/"


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("systemd-analyze is missing: scripts/bootstrap.sh installs systemd")
        pytest.skip("systemd-analyze is missing (apt-get install systemd)")
    return found


def verify(unit: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    local = tmp_path / unit.name
    bin_dir = str(Path(sys.executable).parent) + "/"
    local.write_text(unit.read_text().replace(INSTALLED_BIN, bin_dir))
    return subprocess.run(
        [systemd_analyze(), "verify", "--man=no", str(local)],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def service_section(unit: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(unit.read_text())
    assert {"Unit", "Service", "Install"} <= set(parser.sections())
    return parser["Service"]


@pytest.mark.parametrize("name", ["turn-relay.service", "stun-server.service"])
def test_unit_passes_systemd_analyze_verify(name: str, tmp_path: Path) -> None:
    done = verify(UNITS / name, tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_verify_reports_a_broken_unit(tmp_path: Path) -> None:
    """The check itself: a misspelt key and a bad value are output, so they fail above."""
    broken = tmp_path / "broken" / "turn-relay.service"
    broken.parent.mkdir()
    text = (UNITS / "turn-relay.service").read_text()
    broken.write_text(text.replace("ProtectHome=yes", "ProtectHomme=yes\nLimitNOFILE=lots"))
    done = verify(broken, tmp_path)
    assert "Unknown key 'ProtectHomme'" in done.stderr
    assert "Failed to parse resource value, ignoring: lots" in done.stderr


def test_relay_unit_is_sandboxed_reloads_with_sighup_and_waits_for_a_drain() -> None:
    service = service_section(UNITS / "turn-relay.service")
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["ExecStart"].endswith("turn-relay serve --config /etc/turnkit/turn_relay.toml")
    assert int(service["LimitNOFILE"]) >= 65536
    assert service["CapabilityBoundingSet"] == "CAP_NET_BIND_SERVICE"
    assert service["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE"
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert service[key] == "yes", key
    assert service["ProtectSystem"] == "strict"
    assert service["RestrictAddressFamilies"] == "AF_INET AF_INET6 AF_UNIX"
    assert service["StateDirectory"] == "turnkit"
    assert int(service["TimeoutStopSec"]) >= 30
    assert "CAP_BPF CAP_NET_ADMIN" in (UNITS / "turn-relay.service").read_text()


def test_stun_unit_is_sandboxed() -> None:
    service = service_section(UNITS / "stun-server.service")
    assert service["CapabilityBoundingSet"] == "CAP_NET_BIND_SERVICE"
    assert service["ProtectSystem"] == "strict"
    assert "ExecReload" not in service  # stun-server has no SIGHUP handler: HUP would kill it
