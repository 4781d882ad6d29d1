"""`rtccheck policy` end to end: our turn-relay refuses every forbidden peer by default, coturn
does not (it relays to RFC 1918, 100.64/10 and 169.254.169.254 unless told otherwise).

The audit only asks for permissions: no data goes to any of the addresses tried.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rtccheck_servers import (
    SECRET,
    CoturnOptions,
    RelayOptions,
    coturn_available,
    only,
    run_cli,
    start_coturn,
    start_turn_relay,
    stop,
)

needs_coturn = pytest.mark.skipif(not coturn_available(), reason="coturn is not installed")


def _verdicts(result: dict[str, Any]) -> dict[str, str]:
    return {peer["address"]: peer["verdict"] for peer in result["details"]["peers"]}


def test_turn_relay_default_policy_refuses_them_all(tmp_path: Path) -> None:
    relay = start_turn_relay(tmp_path, RelayOptions())
    try:
        code, document = run_cli(
            "policy", f"turn:127.0.0.1:{relay.port}", "--secret", SECRET, "--require", "policy"
        )
    finally:
        stop(relay)
    assert code == 0, document
    result = only(document, "policy.peers")
    assert result["status"] == "pass"
    assert result["metrics"]["accepted"] == 0
    verdicts = _verdicts(result)
    for address in ("127.0.0.1", "169.254.169.254", "10.0.0.1", "100.64.0.1", "0.0.0.0"):
        assert verdicts[address] == "refused"
    assert verdicts["::ffff:127.0.0.1"] in ("refused", "untested")
    assert document["requirements"][0]["met"] is True


def test_an_allow_list_reopening_loopback_on_a_loopback_relay_is_a_named_lab_setting(
    tmp_path: Path,
) -> None:
    relay = start_turn_relay(tmp_path, RelayOptions(allowed_peers=("127.0.0.0/8",)))
    try:
        code, document = run_cli("policy", f"turn:127.0.0.1:{relay.port}", "--secret", SECRET)
    finally:
        stop(relay)
    assert code == 0
    result = only(document, "policy.peers")
    assert result["status"] == "warn"
    assert result["details"]["accepted"] == ["127.0.0.1"]
    assert result["cause_id"] == "loopback-peers-lab"
    assert result["summary"].startswith("lab setting: the relay accepts loopback peers (127.0.0.1)")


@pytest.mark.interop
@needs_coturn
def test_coturn_default_policy_accepts_private_and_metadata_peers(tmp_path: Path) -> None:
    coturn = start_coturn(tmp_path, CoturnOptions(allow_loopback_peers=False))
    try:
        code, document = run_cli("policy", f"turn:127.0.0.1:{coturn.port}", "--secret", SECRET)
    finally:
        stop(coturn)
    assert code == 1
    result = only(document, "policy.peers")
    verdicts = _verdicts(result)
    assert verdicts["127.0.0.1"] == "refused"
    assert verdicts["0.0.0.0"] == "refused"
    for address in ("169.254.169.254", "10.0.0.1", "192.168.1.1", "100.64.0.1"):
        assert verdicts[address] == "accepted", (address, verdicts)
    assert "169.254.169.254 (cloud metadata service" in result["summary"]


@pytest.mark.interop
@needs_coturn
def test_coturn_allowing_loopback_peers_is_reported(tmp_path: Path) -> None:
    coturn = start_coturn(tmp_path, CoturnOptions(allow_loopback_peers=True))
    try:
        code, document = run_cli(
            "policy", f"turn:127.0.0.1:{coturn.port}?transport=tcp", "--secret", SECRET
        )
    finally:
        stop(coturn)
    assert code == 1
    assert "127.0.0.1" in only(document, "policy.peers")["details"]["accepted"]


def test_without_credentials_the_audit_is_skipped(tmp_path: Path) -> None:
    relay = start_turn_relay(tmp_path, RelayOptions())
    try:
        code, document = run_cli("policy", f"turn:127.0.0.1:{relay.port}")
    finally:
        stop(relay)
    assert code == 0
    result = only(document, "policy.peers")
    assert result["status"] == "skip"
    assert result["cause_id"] == "no-credentials"
