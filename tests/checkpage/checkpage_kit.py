"""Shared pieces of the check-page tests: a relay config with the check page on, minting a
link with `turn-relay link`, the SPKI pin Chromium trusts, and reading the driver's result."""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

HERE = Path(__file__).parent
DRIVER = HERE / "drive_check_page.py"
TURN_RELAY = str(Path(sys.executable).parent / "turn-relay")
RTCCHECK = str(Path(sys.executable).parent / "rtccheck")
REST_SECRET = "check-page-rest-secret"
LINK_SECRET = "check-page-link-secret-0123456789"
API_KEY = "check-page-api-key-0123456789"
PAIRING_SECRET = "check-page-pairing-secret-0123456789"
#: the screenshots the docs show, one per verdict kind (written when this env var is set)
SCREENSHOT_ENV = "TURNKIT_CHECK_PAGE_SCREENSHOTS"
DOCS_SCREENSHOTS = HERE.parent.parent / "docs" / "check-page"


@dataclass(frozen=True)
class RelaySetup:
    listen: tuple[str, ...]
    relay_address: str
    port: int  # UDP and TCP
    tls_port: int
    api_listen: str
    api_port: int
    port_range: tuple[int, int]
    allowed_peers: tuple[str, ...]
    cert: Path
    key: Path


def write_relay_config(directory: Path, setup: RelaySetup) -> Path:
    """A relay TOML with TLS listeners, the HTTP API over TLS, the check page and the
    rendezvous (its "test with another person") on."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "rest-secrets").write_text(REST_SECRET + "\n")
    (directory / "link-secrets").write_text(LINK_SECRET + "\n")
    (directory / "api-key").write_text(API_KEY + "\n")
    (directory / "pairing-secrets").write_text(PAIRING_SECRET + "\n")
    state = directory / "state"
    quoted = ", ".join(json.dumps(a) for a in setup.listen)
    peers = ", ".join(json.dumps(p) for p in setup.allowed_peers)
    text = f"""
[server]
realm = "checkpage.test"
state_dir = "{state}"

[listen]
addresses = [{quoted}]
udp_port = {setup.port}
tcp_port = {setup.port}
tls_port = {setup.tls_port}
tls_cert_file = "{setup.cert}"
tls_key_file = "{setup.key}"

[relay]
addresses = ["{setup.relay_address}"]
port_range = {{ min = {setup.port_range[0]}, max = {setup.port_range[1]} }}

[auth]
rest_secrets_file = "{directory / "rest-secrets"}"

[peer_policy]
allowed_peers = [{peers}]

[api]
enabled = true
listen = "{setup.api_listen}"
port = {setup.api_port}
api_key_file = "{directory / "api-key"}"
tls_cert_file = "{setup.cert}"
tls_key_file = "{setup.key}"

[check]
link_secrets_file = "{directory / "link-secrets"}"
public_url = "https://{setup.api_listen}:{setup.api_port}"

[rendezvous]
pairing_secrets_file = "{directory / "pairing-secrets"}"
"""
    path = directory / "relay.toml"
    path.write_text(text)
    return path


def spki_sha256(cert_pem: Path) -> str:
    certificate = x509.load_pem_x509_certificate(cert_pem.read_bytes())
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def link_argv(config: Path, *extra: str) -> list[str]:
    return [TURN_RELAY, "link", "--config", str(config), "--json", *extra]


def driver_argv(
    url: str, out: Path, spki: str, *extra: str, relay_hosts: tuple[str, ...] = ()
) -> list[str]:
    hosts = [arg for host in relay_hosts for arg in ("--relay-host", host)]
    return [sys.executable, str(DRIVER), url, "--out", str(out), "--spki", spki, *hosts, *extra]


def results_of(report: dict[str, Any], check: str) -> dict[str, dict[str, Any]]:
    """``check``'s results by target."""
    return {r["target"]: r for r in report["results"] if r["check"] == check}


def data_by_transport(report: dict[str, Any]) -> dict[str, str]:
    """browser.data status per transport (udp, tcp, tls), from the target URL."""
    statuses: dict[str, str] = {}
    for target, result in results_of(report, "browser.data").items():
        kind = "tls" if target.startswith("turns:") else target.rpartition("transport=")[2]
        statuses[kind] = result["status"]
    return statuses


def page_problems(outcome: dict[str, Any], allowed_origins: set[str]) -> list[str]:
    """Requests to another origin, CSP violations, console errors, exceptions."""
    problems = [
        f"request to {u}" for u in outcome["requests"] if not _origin_ok(u, allowed_origins)
    ]
    problems += [
        f"websocket to {u}" for u in outcome["websockets"] if not _origin_ok(u, allowed_origins)
    ]
    problems += [f"log {e['level']}: {e['text']}" for e in outcome["log"] if e["level"] == "error"]
    problems += [
        f"console {c['type']}: {c['text']}" for c in outcome["console"] if c["type"] == "error"
    ]
    problems += [f"exception: {e}" for e in outcome["exceptions"]]
    return problems


def _origin_ok(url: str, allowed: set[str]) -> bool:
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0]
    return f"{scheme}://{host}" in allowed
