"""The signaling check: each layer in turn, one result per layer, skips after a failure.

Results, in order (``signaling.tunnel`` only through a proxy, ``signaling.tls`` only for
wss:/https:): ``signaling.proxy``, ``signaling.dns``, ``signaling.tcp``, ``signaling.tunnel``,
``signaling.tls``, ``signaling.upgrade`` (WebSocket) or ``signaling.handshake`` (Socket.IO),
``signaling.round-trip``. Through a proxy, ``dns`` and ``tcp`` are about the proxy (the proxy
resolves the signaling host itself).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from rtccheck.diagnosis import diagnosed
from rtccheck.results import CheckResult, JsonValue, Metrics, Status
from rtccheck.signaling import diagnoses, layers
from rtccheck.signaling.diagnoses import LayerFailedError
from rtccheck.signaling.exchange import (
    ExchangeOptions,
    Replies,
    Upgrade,
    socketio_exchange,
    websocket_exchange,
)
from rtccheck.signaling.proxy import ProxyChoice, choose_proxy
from rtccheck.signaling.target import Protocol, SignalingTarget

FAMILY = "signaling"


@dataclass
class Steps:
    """The steps planned for this URL, and the results recorded so far."""

    planned: list[str]
    target: SignalingTarget
    results: list[CheckResult]

    def passed(
        self,
        step: str,
        summary: str,
        metrics: Metrics | None = None,
        details: dict[str, JsonValue] | None = None,
    ) -> None:
        self.results.append(
            CheckResult(
                f"{FAMILY}.{step}",
                self.target.url,
                Status.PASS,
                summary,
                metrics or {},
                details=details or {},
            )
        )

    def failed(self, failure: LayerFailedError) -> None:
        step = self.planned[len(self.results)]
        metrics: Metrics = {"http_status": failure.http_status} if failure.http_status else {}
        self.results.append(
            diagnosed(f"{FAMILY}.{step}", self.target.url, failure.diagnosis, metrics=metrics)
        )
        for later in self.planned[len(self.results) :]:
            self.results.append(
                CheckResult(
                    f"{FAMILY}.{later}",
                    self.target.url,
                    Status.SKIP,
                    f"not tried: signaling.{step} failed",
                )
            )


def plan(target: SignalingTarget, proxy: ProxyChoice) -> list[str]:
    steps = ["proxy", "dns", "tcp"]
    if proxy.url is not None:
        steps.append("tunnel")
    if target.secure:
        steps.append("tls")
    steps.append("handshake" if target.protocol is Protocol.SOCKETIO else "upgrade")
    steps.append("round-trip")
    return steps


async def run_signaling(
    target: SignalingTarget,
    options: ExchangeOptions,
    environ: Mapping[str, str],
) -> list[CheckResult]:
    proxy = choose_proxy(target, environ)
    options = _with_proxy(options, proxy)
    steps = Steps(plan(target, proxy), target, [])
    steps.passed("proxy", proxy.describe(), details=_proxy_details(proxy))
    try:
        await _layers(steps, proxy, options)
        exchange = socketio_exchange if target.protocol is Protocol.SOCKETIO else websocket_exchange
        upgrade, replies = await exchange(target, options)
        _record_upgrade(steps, upgrade)
        _record_replies(steps, replies, options)
    except LayerFailedError as failure:
        steps.failed(failure)
    return steps.results


def _with_proxy(options: ExchangeOptions, proxy: ProxyChoice) -> ExchangeOptions:
    return replace(options, proxy_url=proxy.url)


def _proxy_details(proxy: ProxyChoice) -> dict[str, JsonValue]:
    return {"proxy": proxy.describe(), "variable": proxy.variable, "bypassed": proxy.bypassed}


async def _layers(steps: Steps, proxy: ProxyChoice, options: ExchangeOptions) -> None:
    target, timeout = steps.target, options.timeout
    host = proxy.host if proxy.host is not None else target.host
    port = proxy.port if proxy.port is not None else target.port
    started = options.monotonic()
    addresses = await layers.resolve(host, port, timeout)
    steps.passed(
        "dns",
        f"{host} -> {', '.join(addresses)}",
        {"addresses": len(addresses)},
        {"host": host, "addresses": list(addresses)},
    )
    started = options.monotonic()
    stream = await layers.connect(addresses, port, timeout)
    steps.passed(
        "tcp",
        f"connected to {stream.address}",
        {"connect_ms": _ms(options, started)},
        {"address": stream.address},
    )
    try:
        if proxy.url is not None:
            started = options.monotonic()
            await layers.tunnel(stream, proxy.url, target.authority, timeout)
            steps.passed(
                "tunnel",
                f"the proxy opened a tunnel to {target.authority}",
                {"http_status": 200, "tunnel_ms": _ms(options, started)},
            )
        if target.secure:
            started = options.monotonic()
            facts = await layers.secure(stream, target.host, options.ca_file, timeout)
            _record_tls(steps, facts, _ms(options, started))
    finally:
        await layers.close(stream, timeout)


def _record_tls(steps: Steps, facts: layers.TlsFacts, handshake_ms: float) -> None:
    certificate = facts.certificate
    summary = f"{facts.version} {facts.cipher}; the certificate names {steps.target.host}"
    details: dict[str, JsonValue] = {"protocol": facts.version, "cipher": facts.cipher}
    if certificate is not None:
        details["subject"] = certificate.subject
        details["dns_names"] = list(certificate.dns_names)
    steps.passed("tls", summary, {"protocol": facts.version, "handshake_ms": handshake_ms}, details)


def _record_upgrade(steps: Steps, upgrade: Upgrade) -> None:
    elapsed = round(upgrade.elapsed_s * 1000, 1)
    if steps.target.protocol is Protocol.SOCKETIO:
        summary = f"Socket.IO connected over {upgrade.facts.get('transport')}"
        metrics: Metrics = {"handshake_ms": elapsed, "transport": str(upgrade.facts["transport"])}
        steps.passed("handshake", summary, metrics, dict(upgrade.facts))
    else:
        steps.passed(
            "upgrade", "101 Switching Protocols", {"upgrade_ms": elapsed, "http_status": 101}
        )


def _record_replies(steps: Steps, replies: Replies, options: ExchangeOptions) -> None:
    expectation = options.expectation.describe()
    url = steps.target.url
    if replies.rtt_s is not None:
        rtt_ms = round(replies.rtt_s * 1000, 1)
        details: dict[str, JsonValue] = {
            "probe": options.probe,
            "reply": replies.reply,
            "expected": expectation,
        }
        steps.passed(
            "round-trip",
            f"{expectation} came back in {rtt_ms} ms",
            {"rtt_ms": rtt_ms, "messages": replies.received},
            details,
        )
        return
    if replies.closed:
        diagnosis = diagnoses.closed(url, "the round trip")
    elif replies.received:
        diagnosis = diagnoses.unexpected_reply(url, replies.received, expectation)
    else:
        diagnosis = diagnoses.no_answer(url, options.timeout, expectation)
    steps.failed(LayerFailedError(diagnosis))


def _ms(options: ExchangeOptions, started: float) -> float:
    return round((options.monotonic() - started) * 1000, 1)
