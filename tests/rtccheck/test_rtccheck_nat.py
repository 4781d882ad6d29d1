"""The RFC 5780 classifier, table by table: mapping, filtering, names, peer matrix, verdicts."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from rtccheck.nat import (
    PEER_KINDS,
    ClassicName,
    Endpoint,
    FilteringBehavior,
    MappingBehavior,
    Method,
    NatObservations,
    Profile,
    TransportAdvice,
    Tristate,
    TurnNeed,
    classic_name,
    classify,
    classify_filtering,
    classify_mapping,
    direct_path_works,
    endpoint,
)

M = MappingBehavior
F = FilteringBehavior
LOCAL = Endpoint("192.168.1.10", 40000)
X1 = Endpoint("203.0.113.5", 40000)
X2 = Endpoint("203.0.113.5", 51000)
X3 = Endpoint("203.0.113.5", 52000)
OTHER = Endpoint("198.51.100.2", 3479)


def observe(**changes: Any) -> NatObservations:
    base: dict[str, Any] = {"local": (LOCAL,), "mapped": X1}
    return NatObservations(**{**base, **changes})


# --- mapping: RFC 5780 section 4.3, and the fallbacks ---------------------------------------

MAPPING_TABLE = [
    # (why, observations, mapping, method)
    ("mapped equals local: no NAT", observe(mapped=LOCAL), M.NO_NAT, Method.ONE_SERVER),
    (
        "no NAT, RFC 5780 server",
        observe(mapped=LOCAL, other_address=OTHER),
        M.NO_NAT,
        Method.RFC5780,
    ),
    (
        "one of several local addresses",
        observe(local=(LOCAL, Endpoint("203.0.113.5", 40000)), mapped=X1),
        M.NO_NAT,
        Method.ONE_SERVER,
    ),
    (
        "same IP as local but another port: a NAT rewrote the port",
        observe(local=(Endpoint("203.0.113.5", 1234),)),
        M.UNKNOWN,
        Method.ONE_SERVER,
    ),
    (
        "test II equals test I",
        observe(other_address=OTHER, mapped_alternate_address=X1),
        M.ENDPOINT_INDEPENDENT,
        Method.RFC5780,
    ),
    (
        "test II differs, test III equals test II",
        observe(other_address=OTHER, mapped_alternate_address=X2, mapped_alternate_both=X2),
        M.ADDRESS_DEPENDENT,
        Method.RFC5780,
    ),
    (
        "test II differs, test III differs again",
        observe(other_address=OTHER, mapped_alternate_address=X2, mapped_alternate_both=X3),
        M.ADDRESS_AND_PORT_DEPENDENT,
        Method.RFC5780,
    ),
    (
        "test III equal to test I is still port-dependent (differs from test II)",
        observe(other_address=OTHER, mapped_alternate_address=X2, mapped_alternate_both=X1),
        M.ADDRESS_AND_PORT_DEPENDENT,
        Method.RFC5780,
    ),
    (
        "test II differs, test III unanswered",
        observe(other_address=OTHER, mapped_alternate_address=X2),
        M.DESTINATION_DEPENDENT,
        Method.RFC5780,
    ),
    (
        "test II unanswered, no second server",
        observe(other_address=OTHER),
        M.UNKNOWN,
        Method.RFC5780,
    ),
    (
        "test II unanswered, second server agrees",
        observe(other_address=OTHER, mapped_second_server=X1),
        M.ENDPOINT_INDEPENDENT,
        Method.TWO_SERVERS,
    ),
    (
        "plain STUN, two servers agree",
        observe(mapped_second_server=X1),
        M.ENDPOINT_INDEPENDENT,
        Method.TWO_SERVERS,
    ),
    (
        "plain STUN, two servers disagree",
        observe(mapped_second_server=X2),
        M.DESTINATION_DEPENDENT,
        Method.TWO_SERVERS,
    ),
    ("plain STUN, one server", observe(), M.UNKNOWN, Method.ONE_SERVER),
    ("no answer at all", observe(udp_answered=False, mapped=None), M.UNKNOWN, Method.NO_ANSWER),
    ("answered but no mapped address", observe(mapped=None), M.UNKNOWN, Method.NO_ANSWER),
]


@pytest.mark.parametrize(
    ("why", "obs", "mapping", "method"), MAPPING_TABLE, ids=[row[0] for row in MAPPING_TABLE]
)
def test_mapping_table(why: str, obs: NatObservations, mapping: M, method: Method) -> None:
    got_mapping, got_method, _ = classify_mapping(obs)
    assert (got_mapping, got_method) == (mapping, method)
    assert classify(obs).mapping is mapping


def test_mapping_notes_explain_missing_answers() -> None:
    _, _, notes = classify_mapping(observe(other_address=OTHER, mapped_alternate_address=X2))
    assert notes == ["RFC 5780 mapping test III got no answer"]
    _, _, notes = classify_mapping(observe())
    assert "one plain STUN server cannot tell" in notes[0]
    _, _, notes = classify_mapping(observe(other_address=OTHER, mapped_second_server=X1))
    assert "test II got no answer" in notes[0]


# --- filtering: RFC 5780 section 4.4 ---------------------------------------------------------

FILTERING_TABLE = {
    # (answered CHANGE-REQUEST ip+port, answered CHANGE-REQUEST port) -> behaviour
    (True, True): F.ENDPOINT_INDEPENDENT,
    (True, False): F.ENDPOINT_INDEPENDENT,
    (True, None): F.ENDPOINT_INDEPENDENT,
    (False, True): F.ADDRESS_DEPENDENT,
    (False, False): F.ADDRESS_AND_PORT_DEPENDENT,
    (False, None): F.UNKNOWN,
    (None, True): F.UNKNOWN,
    (None, False): F.UNKNOWN,
    (None, None): F.UNKNOWN,
}


@pytest.mark.parametrize(("answers", "expected"), FILTERING_TABLE.items())
def test_filtering_table(answers: tuple[bool | None, bool | None], expected: F) -> None:
    both, port = answers
    obs = observe(answered_change_ip_and_port=both, answered_change_port=port)
    assert classify_filtering(obs) is expected


def test_filtering_unknown_when_udp_blocked() -> None:
    obs = observe(udp_answered=False, answered_change_ip_and_port=True)
    assert classify_filtering(obs) is F.UNKNOWN


# --- classic names: every mapping x filtering ------------------------------------------------

CLASSIC = {
    M.NO_NAT: {
        F.ENDPOINT_INDEPENDENT: ClassicName.OPEN_INTERNET,
        F.ADDRESS_DEPENDENT: ClassicName.SYMMETRIC_UDP_FIREWALL,
        F.ADDRESS_AND_PORT_DEPENDENT: ClassicName.SYMMETRIC_UDP_FIREWALL,
        F.UNKNOWN: ClassicName.NO_NAT_FILTERING_UNKNOWN,
    },
    M.ENDPOINT_INDEPENDENT: {
        F.ENDPOINT_INDEPENDENT: ClassicName.FULL_CONE,
        F.ADDRESS_DEPENDENT: ClassicName.RESTRICTED_CONE,
        F.ADDRESS_AND_PORT_DEPENDENT: ClassicName.PORT_RESTRICTED_CONE,
        F.UNKNOWN: ClassicName.CONE_FILTERING_UNKNOWN,
    },
    **{
        m: dict.fromkeys(F, ClassicName.SYMMETRIC)
        for m in (M.ADDRESS_DEPENDENT, M.ADDRESS_AND_PORT_DEPENDENT, M.DESTINATION_DEPENDENT)
    },
    M.UNKNOWN: dict.fromkeys(F, ClassicName.UNKNOWN),
}


@pytest.mark.parametrize(("mapping", "filtering"), list(itertools.product(M, F)))
def test_classic_name_for_every_combination(mapping: M, filtering: F) -> None:
    assert classic_name(True, mapping, filtering) is CLASSIC[mapping][filtering]
    assert classic_name(False, mapping, filtering) is ClassicName.UDP_BLOCKED


# --- direct paths between peer kinds ---------------------------------------------------------

Y, N, U = Tristate.YES, Tristate.NO, Tristate.UNKNOWN
#: rows: my network, columns: the peer's, in PEER_KINDS order
#: open internet, full cone, restricted cone, port-restricted cone, symmetric
PEER_MATRIX = {
    "open internet": (Y, Y, Y, Y, Y),
    "full cone": (Y, Y, Y, Y, Y),
    "restricted cone": (Y, Y, Y, Y, Y),
    "port-restricted cone": (Y, Y, Y, Y, N),
    "symmetric": (Y, Y, Y, N, N),
}


@pytest.mark.parametrize("mine", PEER_KINDS)
def test_peer_matrix(mine: str) -> None:
    got = tuple(direct_path_works(PEER_KINDS[mine], peer) for peer in PEER_KINDS.values())
    assert got == PEER_MATRIX[mine]


ALL_PROFILES = [Profile(m, f) for m, f in itertools.product(M, F)]


@pytest.mark.parametrize(("a", "b"), list(itertools.product(ALL_PROFILES, repeat=2)))
def test_direct_path_is_symmetric(a: Profile, b: Profile) -> None:
    assert direct_path_works(a, b) is direct_path_works(b, a)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        # two address-dependent mappings that filter by address at most do meet
        (
            Profile(M.ADDRESS_DEPENDENT, F.ADDRESS_DEPENDENT),
            Profile(M.ADDRESS_DEPENDENT, F.ENDPOINT_INDEPENDENT),
            Y,
        ),
        (
            Profile(M.ADDRESS_DEPENDENT, F.ADDRESS_DEPENDENT),
            Profile(M.ADDRESS_DEPENDENT, F.ADDRESS_AND_PORT_DEPENDENT),
            N,
        ),
        (
            Profile(M.ADDRESS_DEPENDENT, F.ADDRESS_DEPENDENT),
            Profile(M.DESTINATION_DEPENDENT, F.ADDRESS_DEPENDENT),
            U,
        ),
        (
            Profile(M.DESTINATION_DEPENDENT, F.UNKNOWN),
            Profile(M.ADDRESS_AND_PORT_DEPENDENT, F.ENDPOINT_INDEPENDENT),
            N,
        ),
        # a symmetric UDP firewall behaves like a cone with the same filtering
        (Profile(M.NO_NAT, F.ADDRESS_AND_PORT_DEPENDENT), PEER_KINDS["symmetric"], N),
        (Profile(M.NO_NAT, F.ADDRESS_DEPENDENT), PEER_KINDS["symmetric"], Y),
        (Profile(M.ENDPOINT_INDEPENDENT, F.UNKNOWN), PEER_KINDS["symmetric"], U),
        (Profile(M.ENDPOINT_INDEPENDENT, F.UNKNOWN), PEER_KINDS["port-restricted cone"], Y),
        (Profile(M.UNKNOWN, F.UNKNOWN), PEER_KINDS["open internet"], Y),
        (Profile(M.UNKNOWN, F.UNKNOWN), PEER_KINDS["full cone"], U),
    ],
)
def test_direct_path_edge_cases(a: Profile, b: Profile, expected: Tristate) -> None:
    assert direct_path_works(a, b) is expected


# --- whole classifications from realistic observations ---------------------------------------

SCENARIOS: list[tuple[str, NatObservations, ClassicName, TurnNeed, TransportAdvice, str]] = [
    (
        "open internet",
        observe(mapped=LOCAL, other_address=OTHER, answered_change_ip_and_port=True),
        ClassicName.OPEN_INTERNET,
        TurnNeed.ONLY_FOR_PEERS_WITHOUT_UDP,
        TransportAdvice.UDP,
        "No NAT and no UDP filtering",
    ),
    (
        "full cone",
        observe(other_address=OTHER, mapped_alternate_address=X1, answered_change_ip_and_port=True),
        ClassicName.FULL_CONE,
        TurnNeed.ONLY_FOR_PEERS_WITHOUT_UDP,
        TransportAdvice.UDP,
        "Behind a full cone NAT (mapping endpoint-independent, filtering endpoint-independent)",
    ),
    (
        "restricted cone",
        observe(
            other_address=OTHER,
            mapped_alternate_address=X1,
            answered_change_ip_and_port=False,
            answered_change_port=True,
        ),
        ClassicName.RESTRICTED_CONE,
        TurnNeed.ONLY_FOR_PEERS_WITHOUT_UDP,
        TransportAdvice.UDP,
        "TURN is needed only for peers whose own network blocks UDP",
    ),
    (
        "port-restricted cone",
        observe(
            other_address=OTHER,
            mapped_alternate_address=X1,
            answered_change_ip_and_port=False,
            answered_change_port=False,
        ),
        ClassicName.PORT_RESTRICTED_CONE,
        TurnNeed.FOR_SYMMETRIC_PEERS,
        TransportAdvice.UDP,
        "fail with peers behind symmetric NATs. Calls with peers behind symmetric NATs need TURN",
    ),
    (
        "symmetric",
        observe(
            other_address=OTHER,
            mapped_alternate_address=X2,
            mapped_alternate_both=X3,
            answered_change_ip_and_port=False,
            answered_change_port=False,
        ),
        ClassicName.SYMMETRIC,
        TurnNeed.FOR_MANY_PEERS,
        TransportAdvice.UDP,
        "fail with peers behind port-restricted cone or symmetric NATs",
    ),
    (
        "symmetric UDP firewall",
        observe(
            mapped=LOCAL,
            other_address=OTHER,
            answered_change_ip_and_port=False,
            answered_change_port=False,
        ),
        ClassicName.SYMMETRIC_UDP_FIREWALL,
        TurnNeed.FOR_SYMMETRIC_PEERS,
        TransportAdvice.UDP,
        "No NAT, but a firewall filters incoming UDP",
    ),
    (
        "cone, filtering unknown (two plain servers)",
        observe(mapped_second_server=X1),
        ClassicName.CONE_FILTERING_UNKNOWN,
        TurnNeed.FOR_SYMMETRIC_PEERS,
        TransportAdvice.UDP,
        "may work with peers behind symmetric NATs. Calls with peers behind symmetric NATs "
        "may need TURN",
    ),
    (
        "symmetric by two plain servers",
        observe(mapped_second_server=X2),
        ClassicName.SYMMETRIC,
        TurnNeed.FOR_MANY_PEERS,
        TransportAdvice.UDP,
        "mapping destination-dependent, filtering unknown",
    ),
    (
        "NAT, one plain server",
        observe(),
        ClassicName.UNKNOWN_NAT,
        TurnNeed.UNKNOWN,
        TransportAdvice.UDP,
        "NAT of unknown type. Direct calls work with peers on the open internet; may work",
    ),
    (
        "UDP blocked, TCP works",
        NatObservations(udp_answered=False, tcp_answered=True),
        ClassicName.UDP_BLOCKED,
        TurnNeed.ALWAYS,
        TransportAdvice.TCP,
        "Every call needs TURN over TCP",
    ),
    (
        "only TLS on 443",
        NatObservations(udp_answered=False, tcp_answered=False, tls_443_answered=True),
        ClassicName.UDP_BLOCKED,
        TurnNeed.ALWAYS,
        TransportAdvice.TLS_443,
        "Only TLS on port 443 gets out",
    ),
    (
        "nothing gets out",
        NatObservations(udp_answered=False, tcp_answered=False, tls_443_answered=False),
        ClassicName.UDP_BLOCKED,
        TurnNeed.ALWAYS,
        TransportAdvice.NONE,
        "no call can connect from here",
    ),
    (
        "UDP blocked, TCP not tested",
        NatObservations(udp_answered=False),
        ClassicName.UDP_BLOCKED,
        TurnNeed.ALWAYS,
        TransportAdvice.UNKNOWN,
        "Every call needs TURN over TCP or TLS",
    ),
]


@pytest.mark.parametrize(
    ("why", "obs", "name", "turn", "transport", "phrase"),
    SCENARIOS,
    ids=[row[0] for row in SCENARIOS],
)
def test_scenarios(
    why: str,
    obs: NatObservations,
    name: ClassicName,
    turn: TurnNeed,
    transport: TransportAdvice,
    phrase: str,
) -> None:
    result = classify(obs)
    assert result.classic_name is name
    assert result.turn_need is turn
    assert result.transport is transport
    assert phrase in result.verdict


def test_udp_blocked_means_no_direct_peer() -> None:
    result = classify(NatObservations(udp_answered=False, tcp_answered=True))
    assert result.direct_with == () and result.direct_maybe_with == ()
    assert result.direct_not_with == tuple(PEER_KINDS)


def test_port_preservation() -> None:
    assert classify(observe()).port_preservation is Tristate.YES
    assert classify(observe(mapped=X2)).port_preservation is Tristate.NO
    assert classify(observe(local=())).port_preservation is Tristate.UNKNOWN
    assert classify(observe(mapped=LOCAL)).port_preservation is Tristate.YES


def test_hairpinning_is_reported_and_explained() -> None:
    assert classify(observe(hairpin=True)).hairpinning is Tristate.YES
    assert classify(observe()).hairpinning is Tristate.UNKNOWN
    result = classify(observe(hairpin=False))
    assert result.hairpinning is Tristate.NO
    assert "No hairpinning" in result.verdict


def test_short_mapping_lifetime_is_noted() -> None:
    cone = {"other_address": OTHER, "mapped_alternate_address": X1}
    (note,) = classify(observe(mapping_lifetime_s=30, **cone)).notes
    assert "about 30 s" in note and "RFC 4787" in note
    assert classify(observe(mapping_lifetime_s=300, **cone)).notes == ()


def test_addresses_are_compared_in_canonical_form() -> None:
    obs = NatObservations(
        local=(Endpoint("::ffff:192.168.1.10", 40000),),
        mapped=Endpoint("192.168.1.10", 40000),
    )
    assert classify(obs).mapping is M.NO_NAT
    v6 = NatObservations(
        local=(Endpoint("2001:DB8:0:0::1", 5000),), mapped=Endpoint("2001:db8::1", 5000)
    )
    assert classify(v6).mapping is M.NO_NAT
    assert endpoint("Host.Example", 1) == Endpoint("host.example", 1)


@pytest.mark.parametrize(
    ("udp", "tcp", "tls", "advice"),
    [
        (True, None, None, TransportAdvice.UDP),
        (True, False, False, TransportAdvice.UDP),
        (False, True, None, TransportAdvice.TCP),
        (False, True, True, TransportAdvice.TCP),
        (False, False, True, TransportAdvice.TLS_443),
        (False, None, True, TransportAdvice.TLS_443),
        (False, False, False, TransportAdvice.NONE),
        (False, None, None, TransportAdvice.UNKNOWN),
        (False, False, None, TransportAdvice.UNKNOWN),
    ],
)
def test_transport_advice(
    udp: bool, tcp: bool | None, tls: bool | None, advice: TransportAdvice
) -> None:
    obs = NatObservations(udp_answered=udp, tcp_answered=tcp, tls_443_answered=tls)
    assert classify(obs).transport is advice


@pytest.mark.parametrize(
    ("mapping_kwargs", "filtering_kwargs", "hairpin"),
    list(
        itertools.product(
            [
                {"mapped": LOCAL},
                {"other_address": OTHER, "mapped_alternate_address": X1},
                {
                    "other_address": OTHER,
                    "mapped_alternate_address": X2,
                    "mapped_alternate_both": X2,
                },
                {
                    "other_address": OTHER,
                    "mapped_alternate_address": X2,
                    "mapped_alternate_both": X3,
                },
                {"other_address": OTHER, "mapped_alternate_address": X2},
                {"mapped_second_server": X2},
                {},
            ],
            [
                {"answered_change_ip_and_port": a, "answered_change_port": b}
                for a, b in FILTERING_TABLE
            ],
            [True, False, None],
        )
    ),
)
def test_every_combination_gives_a_complete_verdict(
    mapping_kwargs: dict[str, Any], filtering_kwargs: dict[str, Any], hairpin: bool | None
) -> None:
    result = classify(observe(hairpin=hairpin, **mapping_kwargs, **filtering_kwargs))
    peers = result.direct_with + result.direct_maybe_with + result.direct_not_with
    assert sorted(peers) == sorted(PEER_KINDS)
    assert "open internet" in result.direct_with
    assert result.verdict.endswith(".")
    assert result.classic_name.value in result.verdict or result.mapping is M.NO_NAT
    assert result.classic_name is not ClassicName.UDP_BLOCKED
