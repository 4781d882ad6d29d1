"""rtccheck's own STUN/TURN client, built on turnkit's codec (``stun_server.wire``).

Layers, bottom up:

- ``retransmit``, ``messages``, ``auth``: pure protocol logic (schedules, request builders,
  response interpretation, the long-term credential dance), unit-tested without sockets;
- ``transport``: UDP and TCP/TLS channels delivering whole frames, errors as `ProbeError`;
- ``client``: `StunClient`, transactions with retransmission and matching by transaction ID;
- ``connect``: a client connected to one server endpoint;
- ``turn``: `TurnSession` (Allocate, Refresh, CreatePermission, ChannelBind, Send) and the
  ``allocation`` context manager that always deletes what it allocated.
"""

from rtccheck.probe.auth import Credentials
from rtccheck.probe.client import Exchange, StunClient
from rtccheck.probe.connect import Connection, ServerEndpoint, connect
from rtccheck.probe.errors import FailureKind, ProbeError
from rtccheck.probe.messages import AllocateAnswer, BindingAnswer
from rtccheck.probe.turn import RelayedData, TurnSession, allocation

__all__ = [
    "AllocateAnswer",
    "BindingAnswer",
    "Connection",
    "Credentials",
    "Exchange",
    "FailureKind",
    "ProbeError",
    "RelayedData",
    "ServerEndpoint",
    "StunClient",
    "TurnSession",
    "allocation",
    "connect",
]
