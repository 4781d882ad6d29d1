"""Every ``cause_id`` rtccheck reports: the one vocabulary of failures, shared by all checks.

A result that fails or warns (and a few skips) names its cause with one of these ids in
``CheckResult.cause_id``. The same failure has the same id whichever check found it (a refused
TCP connection is ``connection-refused`` in stun, turn, tls, gather and data alike). The ids are
stable: CI pipelines match on them. What each one means, and which checks report it, is in
docs/rtccheck-json.md (a test keeps that catalogue and this enum equal). The relay's check page
(turn_relay/api/static/check/check.js) reports from the same vocabulary, since its stored
reports use the same schema (tests/checkpage/test_page_cause_ids.py).
"""

from __future__ import annotations

from enum import StrEnum, unique


@unique
class CauseId(StrEnum):
    # reaching a server: UDP, TCP, TLS, names and routes (stun, turn, tls, gather, data, ...)
    UDP_NO_ANSWER = "udp-no-answer"
    UDP_PORT_UNREACHABLE = "udp-port-unreachable"
    CONNECT_TIMEOUT = "connect-timeout"
    CONNECTION_REFUSED = "connection-refused"
    STREAM_NO_ANSWER = "stream-no-answer"
    TCP_NO_ANSWER = "tcp-no-answer"
    CONNECTION_CLOSED = "connection-closed"
    UNREACHABLE = "unreachable"
    DNS_FAILURE = "dns-failure"
    MALFORMED_ANSWER = "malformed-answer"
    SOCKET_ERROR = "socket-error"

    # TLS and certificates (tls, stun.tls, turns:, the ICE checks over turns:)
    TLS_HANDSHAKE_FAILED = "tls-handshake-failed"
    TLS_HANDSHAKE_TIMEOUT = "tls-handshake-timeout"
    TLS_NAME_MISMATCH = "tls-name-mismatch"
    TLS_SELF_SIGNED = "tls-self-signed"
    TLS_UNTRUSTED = "tls-untrusted"
    TLS_EXPIRED = "tls-expired"
    TLS_NOT_YET_VALID = "tls-not-yet-valid"
    TLS_VERIFY_FAILED = "tls-verify-failed"
    TLS_EXPIRES_SOON = "tls-expires-soon"
    TLS_OLD_PROTOCOL = "tls-old-protocol"

    # STUN answers
    BINDING_REFUSED = "binding-refused"

    # credentials (the credentials check, and TURN's 401 explained with the same analysis)
    NO_CREDENTIALS = "no-credentials"
    CREDENTIALS_URL_FAILED = "credentials-url-failed"
    USERNAME_MALFORMED = "username-malformed"
    USERNAME_MILLISECONDS = "username-milliseconds"
    USERNAME_NOT_REST = "username-not-rest"
    CREDENTIAL_EXPIRED = "credential-expired"
    CREDENTIAL_EXPIRES_SOON = "credential-expires-soon"
    CREDENTIAL_LONG_LIVED = "credential-long-lived"
    CLOCK_SKEW = "clock-skew"
    WRONG_PASSWORD = "wrong-password"
    WRONG_SECRET = "wrong-secret"
    CLOCK_SKEW_OR_WRONG_SECRET = "clock-skew-or-wrong-secret"
    CREDENTIALS_REJECTED = "credentials-rejected"
    BAD_CHALLENGE = "bad-challenge"

    # TURN error answers (RFC 8489/8656 codes)
    TRY_ALTERNATE = "try-alternate"
    BAD_REQUEST = "bad-request"
    FORBIDDEN = "forbidden"
    UNKNOWN_ATTRIBUTE = "unknown-attribute"
    ALLOCATION_MISMATCH = "allocation-mismatch"
    STALE_NONCE = "stale-nonce"
    ADDRESS_FAMILY_NOT_SUPPORTED = "address-family-not-supported"
    WRONG_CREDENTIALS = "wrong-credentials"
    UNSUPPORTED_TRANSPORT = "unsupported-transport"
    ALLOCATION_QUOTA_REACHED = "allocation-quota-reached"
    SERVER_ERROR = "server-error"
    INSUFFICIENT_CAPACITY = "insufficient-capacity"
    ERROR_RESPONSE = "error-response"
    TURN_CLIENT_ERROR = "turn-client-error"
    ALLOCATION_INTERMITTENT = "allocation-intermittent"

    # the relay: its relayed address, data through it, authentication, release
    RELAY_UNSPECIFIED = "relay-unspecified"
    RELAY_ADDRESS_UNEXPECTED = "relay-address-unexpected"
    RELAY_PORT_OUTSIDE_RANGE = "relay-port-outside-range"
    RELAY_PRIVATE_ADDRESS = "relay-private-address"
    RELAY_ADDRESS_UNUSABLE = "relay-address-unusable"
    RELAY_PEER_FORBIDDEN = "relay-peer-forbidden"
    RELAY_LOOP_FAILED = "relay-loop-failed"
    RELAY_DATA_LOST = "relay-data-lost"
    OPEN_RELAY = "open-relay"
    RELEASE_FAILED = "release-failed"

    # ICE agents and data (gather, data)
    NO_HOST_CANDIDATE = "no-host-candidate"
    LOOPBACK_ONLY = "loopback-only"
    NO_IPV4_HOST_CANDIDATE = "no-ipv4-host-candidate"
    NO_SRFLX_CANDIDATE = "no-srflx-candidate"
    ICE_CHECKS_FAILED = "ice-checks-failed"
    WRONG_CANDIDATE_PAIR = "wrong-candidate-pair"
    NO_DATA = "no-data"
    PACKET_LOSS = "packet-loss"
    HEAVY_PACKET_LOSS = "heavy-packet-loss"

    # the NAT (nat)
    UDP_BLOCKED = "udp-blocked"
    NO_SERVER_REACHABLE = "no-server-reachable"
    SYMMETRIC_NAT = "symmetric-nat"
    RESTRICTIVE_FILTERING = "restrictive-filtering"
    NAT_UNKNOWN = "nat-unknown"

    # the relay's peer policy (policy)
    FORBIDDEN_PEERS_ACCEPTED = "forbidden-peers-accepted"
    LOOPBACK_PEERS_LAB = "loopback-peers-lab"

    # the app's RTCConfiguration (inputs.ice-config, and the checks it rules out)
    RELAY_POLICY_WITHOUT_TURN = "relay-policy-without-turn"
    NOT_APPLICABLE_RELAY_POLICY = "not-applicable-relay-policy"

    # DNS (dns)
    DNS_NO_RESOLVER = "dns-no-resolver"
    DNS_PRIVATE_ADDRESS = "dns-private-address"
    DNS_IPV6_ONLY = "dns-ipv6-only"
    DNS_SRV_PORT_MISMATCH = "dns-srv-port-mismatch"
    DNS_SRV_FAILED = "dns-srv-failed"

    # signaling: an app's WebSocket or Socket.IO endpoint (signaling)
    PROXY_REFUSED = "proxy-refused"
    HTTP_NO_ANSWER = "http-no-answer"
    UPGRADE_REFUSED = "upgrade-refused"
    SOCKETIO_REFUSED = "socketio-refused"
    ROUND_TRIP_NO_ANSWER = "round-trip-no-answer"
    ROUND_TRIP_UNEXPECTED = "round-trip-unexpected"
    WEBSOCKET_BLOCKED = "websocket-blocked"  # reported by the relay's check page only

    # rtccheck itself
    CHECK_TIMEOUT = "check-timeout"
    CHECK_CRASHED = "check-crashed"


#: every catalogued id as plain text
CAUSE_IDS: frozenset[str] = frozenset(cause.value for cause in CauseId)
