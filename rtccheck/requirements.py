"""What a pipeline can demand with ``--require``: named capabilities that checks test.

A check result lists the capabilities it tests in ``CheckResult.capabilities``. A requirement is
met when at least one result testing it passed (or warned) and none testing it failed.
"""

from __future__ import annotations

CAPABILITIES: dict[str, str] = {
    "dns": "every server host name resolves",
    "credentials": "the TURN credentials are valid now (and match the secret, when given)",
    "stun": "a STUN Binding request is answered",
    "relay-udp": "a TURN allocation over UDP succeeds",
    "relay-tcp": "a TURN allocation over TCP succeeds",
    "relay-tls": "a TURN allocation over TLS (turns:) succeeds",
    "data-relay": "two ICE agents exchange data through a TURN relay",
    "data-direct": "two ICE agents exchange data on the host/srflx path",
    "tls": "the turns: certificate is valid and matches the host name",
    "policy": "the relay refuses every forbidden peer address tried",
}


class UnknownRequirementError(ValueError):
    """A ``--require`` name outside CAPABILITIES."""


def parse_requirements(values: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Split comma-separated ``--require`` values; unknown names raise with the valid list."""
    names: list[str] = []
    for value in values:
        for part in value.split(","):
            name = part.strip().lower()
            if not name:
                continue
            if name not in CAPABILITIES:
                known = ", ".join(CAPABILITIES)
                raise UnknownRequirementError(
                    f"unknown requirement {part.strip()!r}; known: {known}"
                )
            if name not in names:
                names.append(name)
    return tuple(names)
