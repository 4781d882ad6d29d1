"""Report documents for tests of the report store and schema: valid ones of a given size."""

from __future__ import annotations

import copy
import json
from typing import Any


def report(
    *, source: str | None = "browser", padding: int = 0, verdict: str = "PASS (1 pass)"
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schema_version": 1,
        "tool": "rtccheck",
        "tool_version": "0.1.0",
        "started_at": "2023-11-14T22:13:20+00:00",
        "duration_s": 1.5,
        "status": "pass",
        "exit_code": 0,
        "verdict": verdict,
        "checks_run": ["gather"],
        "targets": [],
        "requirements": [],
        "results": [
            {
                "check": "gather.relay",
                "target": "turn:203.0.113.5",
                "status": "pass",
                "summary": "relay candidate" + " " * padding,
                "metrics": {"gathering_ms": 12.5},
                "cause_id": None,
                "cause": None,
                "fix": None,
                "details": {},
                "capabilities": [],
                "see": None,
            }
        ],
        "durations_s": {"gather": 1.2},
    }
    if source is not None:
        document["source"] = source
    if source == "browser":
        document["client"] = {
            "browser": "Chromium",
            "browser_version": "131",
            "os": "Linux",
            "user_agent": "Mozilla/5.0",
        }
        document["relay_observed"] = {
            "test_id": "t-1",
            "allocations": [
                {
                    "transport": "udp",
                    "client_address": "198.51.100.7",
                    "client_port": 40000,
                    "server_address": "203.0.113.5",
                    "server_port": 3478,
                    "relayed_address": "203.0.113.5",
                    "relayed_port": 50000,
                    "bytes_to_peers": 1200,
                    "bytes_from_peers": 1100,
                    "errors_answered": [{"code": 401, "count": 1}],
                }
            ],
        }
    return document


def body(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def stored_size(document: dict[str, Any]) -> int:
    """The size the store counts: compact JSON."""
    return len(json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode())


def mutated(document: dict[str, Any], path: tuple[str | int, ...], value: object) -> dict[str, Any]:
    """A copy of ``document`` with the value at ``path`` (keys and list indexes) replaced."""
    changed = copy.deepcopy(document)
    target: Any = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return changed
