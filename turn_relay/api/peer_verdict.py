"""A peer test's legs -> the verdict both parties see, as a report of the shared schema.

The leading party measures the legs and sends them in its final ``result`` message; the relay
turns them into a verdict here (one implementation for every party type: browser or CLI),
stores the report (source ``"peer"``) and sends both parties the same ``verdict`` message.

Legs (``leg`` names): ``all`` (every candidate type allowed: host, srflx, relay over UDP),
``relay-udp``, ``relay-tcp``, ``relay-tls`` (relay-only, one transport to the relay each) and
``ice-restart`` (an ICE restart in the middle of a data test through the relay). Verdicts, the
first that holds: "direct works" (leg ``all`` selected no relay candidate on either side);
"needs TURN (UDP is fine)"; "needs TURN over TLS on 443" (or "over TLS on <port>"); "needs TURN
over TCP"; "nothing works: <cause>".

Pure: the leader's message is untrusted input, so every field is checked and coerced here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

RELAY_LEGS = ("relay-udp", "relay-tcp", "relay-tls")
LEGS = ("all", *RELAY_LEGS, "ice-restart")
CANDIDATE_TYPES = ("host", "srflx", "prflx", "relay")
PARTY_KINDS = ("cli", "browser")
DIRECT = "direct works"
RELAY_UDP = "needs TURN (UDP is fine)"
RELAY_TCP = "needs TURN over TCP"
TOOL_VERSION_FALLBACK = "unknown"
_METRICS = ("connect_ms", "rtt_p50_ms", "rtt_p95_ms", "loss_pct", "throughput_mbps")
_COUNTS = ("packets_sent", "packets_received")


@dataclass(frozen=True)
class Leg:
    name: str
    status: str  # "connected", "failed" or "skipped"
    url: str | None
    metrics: dict[str, float | None]
    pair: dict[str, Any] | None
    gathered: dict[str, list[str]]
    error: str | None
    extra: dict[str, Any]

    @property
    def connected(self) -> bool:
        return self.status == "connected"

    @property
    def direct(self) -> bool:
        if not self.connected or self.pair is None:
            return False
        types = [self.pair.get(end, {}).get("type") for end in ("local", "remote")]
        return all(t in CANDIDATE_TYPES and t != "relay" for t in types)


@dataclass(frozen=True)
class Verdict:
    text: str
    status: str  # "pass" or "fail" (report status)
    cause: str | None
    met: dict[str, bool]  # requirement -> met: direct, relay-udp, relay-tcp, relay-tls


def legs_from(raw: object) -> list[Leg]:
    """The legs of a leader's message; entries that are not legs are dropped."""
    if not isinstance(raw, list):
        return []
    legs = [leg for item in raw[: len(LEGS)] if (leg := _leg(item)) is not None]
    return list({leg.name: leg for leg in legs}.values())


def _leg(item: object) -> Leg | None:
    if not isinstance(item, dict) or item.get("leg") not in LEGS:
        return None
    status = item.get("status")
    return Leg(
        name=str(item["leg"]),
        status=status if status in ("connected", "failed", "skipped") else "failed",
        url=_text(item.get("url"), 300),
        metrics={key: _number(item.get(key)) for key in (*_METRICS, *_COUNTS)},
        pair=_pair(item.get("pair")),
        gathered=_gathered(item.get("gathered")),
        error=_text(item.get("error"), 500),
        extra=_restart(item.get("restart")),
    )


def _text(value: object, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return round(number, 3) if math.isfinite(number) and number >= 0 else None


def _candidate(value: object) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    kind = value.get("type")
    return {
        "type": kind if kind in CANDIDATE_TYPES else None,
        "protocol": _text(value.get("protocol"), 8),
        "relay_protocol": _text(value.get("relay_protocol"), 8),
        "address": _text(value.get("address"), 64),
        "port": _number(value.get("port")),
    }


def _pair(value: object) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    local, remote = _candidate(value.get("local")), _candidate(value.get("remote"))
    return {"local": local, "remote": remote} if local and remote else None


def _gathered(value: object) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        return {}
    return {
        side: sorted({t for t in types if t in CANDIDATE_TYPES})
        for side, types in value.items()
        if side in ("leader", "follower") and isinstance(types, list)
    }


def _restart(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        return {}
    phases = {
        phase: {key: _number(part.get(key)) for key in ("rtt_p50_ms", "loss_pct", *_COUNTS)}
        for phase in ("before", "during", "after")
        if isinstance(part := value.get(phase), dict)
    }
    return {
        "restart": {
            "channel_survived": value.get("channel_survived") is True,
            "new_session_selected": value.get("new_session_selected") is True,
            "credentials_changed": value.get("credentials_changed") is True,
            "restart_ms": _number(value.get("restart_ms")),
            **phases,
        }
    }


# ------------------------------------------------------------------ verdict


def tls_port(urls: Sequence[str]) -> int | None:
    """The port of the relay's first ``turns:`` URL, None when it offers none."""
    for url in urls:
        if url.startswith("turns:"):
            host_port = url[len("turns:") :].split("?", 1)[0]
            parsed = urlsplit(f"//{host_port}")
            return parsed.port or 5349
    return None


def decide(legs: Sequence[Leg], urls: Sequence[str]) -> Verdict:
    by_name = {leg.name: leg for leg in legs}
    met = {
        "direct": by_name.get("all") is not None and by_name["all"].direct,
        **{name: name in by_name and by_name[name].connected for name in RELAY_LEGS},
    }
    port = tls_port(urls)
    if met["direct"]:
        return Verdict(DIRECT, "pass", None, met)
    if met["relay-udp"]:
        return Verdict(RELAY_UDP, "pass", None, met)
    if met["relay-tls"]:
        return Verdict(f"needs TURN over TLS on {port}", "pass", None, met)
    if met["relay-tcp"]:
        return Verdict(RELAY_TCP, "pass", None, met)
    cause = nothing_works_cause(by_name, port)
    return Verdict(f"nothing works: {cause}", "fail", cause, met)


def nothing_works_cause(legs: Mapping[str, Leg], port: int | None) -> str:
    """Why no leg connected, from what each side gathered."""
    no_udp = [side for side in ("leader", "follower") if _lacks_relay(legs.get("relay-udp"), side)]
    no_tcp = [side for side in ("leader", "follower") if _lacks_relay(legs.get("relay-tcp"), side)]
    if no_udp and port is None:
        sides = " and ".join(f"the {side}" for side in no_udp)
        return f"{sides} cannot reach the relay over UDP and the relay has no TLS listener"
    if no_udp and no_tcp:
        sides = " and ".join(f"the {side}" for side in sorted(set(no_udp) & set(no_tcp)))
        return f"{sides or 'one side'} reaches the relay on no transport"
    if not legs:
        return "no leg was run"
    return (
        "both sides reached the relay, but no connectivity check passed between their"
        " allocations (the relay's peer policy, or a firewall on the relay port range)"
    )


def _lacks_relay(leg: Leg | None, side: str) -> bool:
    if leg is None or leg.status == "skipped":
        return False
    return "relay" not in leg.gathered.get(side, [])


# ------------------------------------------------------------------ report


def build_report(
    message: Mapping[str, object],
    urls: Sequence[str],
    *,
    room: str,
    started_at: str,
    duration_s: float,
    tool_version: str,
) -> tuple[dict[str, Any], Verdict]:
    """The schema report of a leader's final ``result`` message, and its verdict."""
    legs = legs_from(message.get("legs"))
    verdict = decide(legs, urls)
    results = [_leg_result(leg) for leg in legs]
    results.append(_verdict_result(verdict, room, message))
    report: dict[str, Any] = {
        "schema_version": 1,
        "tool": "rtccheck",
        "tool_version": tool_version or TOOL_VERSION_FALLBACK,
        "started_at": started_at,
        "duration_s": round(max(duration_s, 0.0), 3),
        "status": verdict.status,
        "exit_code": 0 if verdict.status == "pass" else 1,
        "verdict": verdict.text,
        "checks_run": ["peer"],
        "targets": [],
        "requirements": _requirements(verdict),
        "results": results,
        "durations_s": {"peer": round(max(duration_s, 0.0), 3)},
        "source": "peer",
    }
    return report, verdict


_REQUIREMENT_NAMES = {
    "direct": "data-direct",
    "relay-udp": "relay-udp",
    "relay-tcp": "relay-tcp",
    "relay-tls": "relay-tls",
}


def _requirements(verdict: Verdict) -> list[dict[str, Any]]:
    return [
        {
            "name": _REQUIREMENT_NAMES[name],
            "description": f"the two parties connect: {name}",
            "met": met,
            "shown_by": [f"peer.{name}"] if met else [],
            "failed_by": [] if met else [f"peer.{name}"],
            "missing": None if met else f"no call on the {name} leg",
        }
        for name, met in verdict.met.items()
    ]


def _leg_result(leg: Leg) -> dict[str, Any]:
    status = {"connected": "pass", "failed": "fail", "skipped": "skip"}[leg.status]
    if leg.name == "all" and leg.connected and not leg.direct:
        status = "warn"  # connected, but only through the relay
    return {
        "check": f"peer.{leg.name}",
        "target": leg.url or leg.name,
        "status": status,
        "summary": _leg_summary(leg),
        "metrics": dict(leg.metrics),
        "cause_id": None,
        "cause": leg.error,
        "fix": None,
        "details": {"pair": leg.pair, "gathered": leg.gathered, **leg.extra},
        "capabilities": [],
        "see": None,
    }


def _end(candidate: Mapping[str, Any] | None) -> str:
    if not candidate:
        return "?"
    kind = candidate.get("type") or "?"
    relay = candidate.get("relay_protocol")
    return f"{kind}/{relay}" if kind == "relay" and relay else str(kind)


def _leg_summary(leg: Leg) -> str:
    if leg.status == "skipped":
        return f"{leg.name}: skipped ({leg.error or 'not run'})"
    if not leg.connected:
        return f"{leg.name}: no connection ({leg.error or 'ICE failed'})"
    pair = leg.pair or {}
    m = leg.metrics
    return (
        f"{leg.name}: {_end(pair.get('local'))} <-> {_end(pair.get('remote'))}, connect "
        f"{_fmt(m['connect_ms'])} ms, RTT p50 {_fmt(m['rtt_p50_ms'])} ms p95 "
        f"{_fmt(m['rtt_p95_ms'])} ms, loss {_fmt(m['loss_pct'])}%, "
        f"{_fmt(m['throughput_mbps'])} Mbit/s"
    )


def _fmt(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


def _verdict_result(verdict: Verdict, room: str, message: Mapping[str, object]) -> dict[str, Any]:
    parties = message.get("parties")
    kinds = {}
    if isinstance(parties, dict):
        for role in ("leader", "follower"):
            party = parties.get(role)
            if isinstance(party, dict) and party.get("kind") in PARTY_KINDS:
                kinds[role] = {
                    "kind": party["kind"],
                    "agent": _text(party.get("agent"), 200),
                }
    return {
        "check": "peer.verdict",
        "target": room,
        "status": verdict.status,
        "summary": verdict.text,
        "metrics": {},
        "cause_id": None,
        "cause": verdict.cause,
        "fix": None if verdict.status == "pass" else _fix(verdict),
        "details": {"room": room, "parties": kinds, "met": verdict.met},
        "capabilities": [name for name, met in verdict.met.items() if met],
        "see": None,
    }


def _fix(verdict: Verdict) -> str:
    if verdict.cause and "no TLS listener" in verdict.cause:
        return "Give the relay a TLS listener on 443 (listen.tls_port), so TURN over TLS works."
    return "Run rtccheck on each network to see which transport to the relay is blocked."
