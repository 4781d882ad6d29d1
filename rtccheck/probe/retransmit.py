"""RFC 8489 section 6.2.1 retransmission, as a list of waits: sans-I/O and easy to test.

Over UDP a request is sent, then re-sent after RTO, 2*RTO, 4*RTO ... (Rc = 7 transmissions in
all), the last one waited for Rm*RTO; RTO starts at 500 ms. Over TCP/TLS a request is sent once.
Either way no probe waits past the check's timeout: the schedule is cut at ``timeout``.
"""

from __future__ import annotations

INITIAL_RTO_S = 0.5
MAX_TRANSMISSIONS = 7  # Rc
LAST_WAIT_FACTOR = 16  # Rm


def transmission_waits(
    timeout: float,
    *,
    reliable: bool = False,
    rto: float = INITIAL_RTO_S,
    transmissions: int = MAX_TRANSMISSIONS,
) -> list[float]:
    """How long to wait after each transmission; their sum never exceeds ``timeout``.

    >>> transmission_waits(5.0)
    [0.5, 1.0, 2.0, 1.5]
    >>> transmission_waits(5.0, reliable=True)
    [5.0]
    """
    if timeout <= 0:
        return []
    if reliable:
        return [timeout]
    waits: list[float] = []
    elapsed = 0.0
    for index in range(transmissions):
        last = index == transmissions - 1
        wait = rto * LAST_WAIT_FACTOR if last else rto * (2**index)
        wait = min(wait, timeout - elapsed)
        waits.append(wait)
        elapsed += wait
        if elapsed >= timeout:
            break
    return waits
