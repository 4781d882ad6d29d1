"""RFC 5780 NAT behaviour classifier: probe observations in, behaviour and plain verdict out.

Pure: no sockets, no clock. A probe (the ``nat`` check) fills NatObservations; ``classify`` says
how the NAT maps (RFC 5780 section 4.3) and filters (section 4.4), whether it hairpins and keeps
ports, the RFC 3489 "classic" name, and what that means for calls: which peers a direct path
works with, whether TURN is needed and over which transport.

Without RFC 5780 (the server gave no OTHER-ADDRESS) the mapping is judged by comparing the
mapped address seen by two different plain STUN servers; filtering stays unknown.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import NamedTuple


class Endpoint(NamedTuple):
    host: str
    port: int


def endpoint(host: str, port: int) -> Endpoint:
    """An address in canonical form, so equal addresses compare equal (IPv4-mapped -> IPv4)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return Endpoint(host.lower(), port)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return Endpoint(str(address), port)


class MappingBehavior(StrEnum):
    NO_NAT = "no-nat"
    ENDPOINT_INDEPENDENT = "endpoint-independent"
    ADDRESS_DEPENDENT = "address-dependent"
    ADDRESS_AND_PORT_DEPENDENT = "address-and-port-dependent"
    #: the mapping changes with the destination, but the probes could not tell whether the
    #: address alone or address and port matter (test III unanswered, or two plain servers)
    DESTINATION_DEPENDENT = "destination-dependent"
    UNKNOWN = "unknown"


class FilteringBehavior(StrEnum):
    ENDPOINT_INDEPENDENT = "endpoint-independent"
    ADDRESS_DEPENDENT = "address-dependent"
    ADDRESS_AND_PORT_DEPENDENT = "address-and-port-dependent"
    UNKNOWN = "unknown"


class Tristate(StrEnum):
    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"


class Method(StrEnum):
    RFC5780 = "rfc5780"
    TWO_SERVERS = "two-servers"
    ONE_SERVER = "one-server"
    NO_ANSWER = "no-answer"


class ClassicName(StrEnum):
    OPEN_INTERNET = "open internet"
    SYMMETRIC_UDP_FIREWALL = "symmetric UDP firewall"
    NO_NAT_FILTERING_UNKNOWN = "no NAT (filtering unknown)"
    FULL_CONE = "full cone"
    RESTRICTED_CONE = "restricted cone"
    PORT_RESTRICTED_CONE = "port-restricted cone"
    CONE_FILTERING_UNKNOWN = "cone NAT (filtering unknown)"
    SYMMETRIC = "symmetric"
    UNKNOWN_NAT = "NAT of unknown type"
    UDP_BLOCKED = "UDP blocked"
    UNKNOWN = "unknown"


class TurnNeed(StrEnum):
    ONLY_FOR_PEERS_WITHOUT_UDP = "only-for-peers-without-udp"
    FOR_SYMMETRIC_PEERS = "for-symmetric-peers"
    FOR_MANY_PEERS = "for-many-peers"
    ALWAYS = "always"
    UNKNOWN = "unknown"


class TransportAdvice(StrEnum):
    UDP = "udp"
    TCP = "tcp"
    TLS_443 = "tls-443"
    NONE = "none"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class NatObservations:
    """What the probes saw. None means "not tested" (or no answer where noted)."""

    local: tuple[Endpoint, ...] = ()
    udp_answered: bool = True
    tcp_answered: bool | None = None
    tls_443_answered: bool | None = None
    #: mapping test I: XOR-MAPPED-ADDRESS from the primary address and port
    mapped: Endpoint | None = None
    #: the server returned OTHER-ADDRESS (it supports RFC 5780)
    other_address: Endpoint | None = None
    #: mapping test II: from the alternate address, primary port (None: no answer / not run)
    mapped_alternate_address: Endpoint | None = None
    #: mapping test III: from the alternate address and alternate port
    mapped_alternate_both: Endpoint | None = None
    #: filtering test II: answer received to CHANGE-REQUEST change IP and port
    answered_change_ip_and_port: bool | None = None
    #: filtering test III: answer received to CHANGE-REQUEST change port
    answered_change_port: bool | None = None
    #: a packet sent to our own mapped address came back through the NAT
    hairpin: bool | None = None
    #: fallback without RFC 5780: mapped address seen by a second server at another IP
    mapped_second_server: Endpoint | None = None
    mapping_lifetime_s: float | None = None


@dataclass(frozen=True)
class Profile:
    """How a network behaves toward a direct (host/srflx) UDP path."""

    mapping: MappingBehavior
    filtering: FilteringBehavior


@dataclass(frozen=True)
class NatClassification:
    method: Method
    mapping: MappingBehavior
    filtering: FilteringBehavior
    hairpinning: Tristate
    port_preservation: Tristate
    classic_name: ClassicName
    direct_with: tuple[str, ...]
    direct_maybe_with: tuple[str, ...]
    direct_not_with: tuple[str, ...]
    turn_need: TurnNeed
    transport: TransportAdvice
    verdict: str
    notes: tuple[str, ...]


#: the peers a verdict talks about, each as the behaviour most such networks have
PEER_KINDS: dict[str, Profile] = {
    "open internet": Profile(MappingBehavior.NO_NAT, FilteringBehavior.ENDPOINT_INDEPENDENT),
    "full cone": Profile(
        MappingBehavior.ENDPOINT_INDEPENDENT, FilteringBehavior.ENDPOINT_INDEPENDENT
    ),
    "restricted cone": Profile(
        MappingBehavior.ENDPOINT_INDEPENDENT, FilteringBehavior.ADDRESS_DEPENDENT
    ),
    "port-restricted cone": Profile(
        MappingBehavior.ENDPOINT_INDEPENDENT, FilteringBehavior.ADDRESS_AND_PORT_DEPENDENT
    ),
    "symmetric": Profile(
        MappingBehavior.ADDRESS_AND_PORT_DEPENDENT, FilteringBehavior.ADDRESS_AND_PORT_DEPENDENT
    ),
}

_STABLE = (MappingBehavior.NO_NAT, MappingBehavior.ENDPOINT_INDEPENDENT)
_OPEN_FILTERS = (FilteringBehavior.ENDPOINT_INDEPENDENT, FilteringBehavior.ADDRESS_DEPENDENT)
_RFC4787_MIN_LIFETIME_S = 120.0


def classify(observations: NatObservations) -> NatClassification:
    """Classify the NAT in front of the probing host from what the probes saw."""
    observations = canonical(observations)
    mapping, method, notes = classify_mapping(observations)
    filtering = classify_filtering(observations)
    name = classic_name(observations.udp_answered, mapping, filtering)
    if name is ClassicName.UNKNOWN and observations.mapped is not None:
        name = ClassicName.UNKNOWN_NAT
    peers = _peer_outcomes(observations.udp_answered, Profile(mapping, filtering))
    turn_need = _turn_need(observations.udp_answered, peers)
    transport = advise_transport(observations)
    hairpin = _tristate(observations.hairpin)
    result = NatClassification(
        method=method,
        mapping=mapping,
        filtering=filtering,
        hairpinning=hairpin,
        port_preservation=port_preservation(observations, mapping),
        classic_name=name,
        direct_with=peers[Tristate.YES],
        direct_maybe_with=peers[Tristate.UNKNOWN],
        direct_not_with=peers[Tristate.NO],
        turn_need=turn_need,
        transport=transport,
        verdict="",
        notes=tuple(notes) + _lifetime_notes(observations.mapping_lifetime_s),
    )
    return _with_verdict(result)


def canonical(obs: NatObservations) -> NatObservations:
    """The same observations with every address in canonical form (see ``endpoint``)."""
    return replace(
        obs,
        local=tuple(endpoint(*address) for address in obs.local),
        mapped=_canonical_or_none(obs.mapped),
        other_address=_canonical_or_none(obs.other_address),
        mapped_alternate_address=_canonical_or_none(obs.mapped_alternate_address),
        mapped_alternate_both=_canonical_or_none(obs.mapped_alternate_both),
        mapped_second_server=_canonical_or_none(obs.mapped_second_server),
    )


def _canonical_or_none(address: Endpoint | None) -> Endpoint | None:
    return None if address is None else endpoint(*address)


def classify_mapping(obs: NatObservations) -> tuple[MappingBehavior, Method, list[str]]:
    """RFC 5780 section 4.3 (tests I-III), or the two-server comparison without RFC 5780."""
    if not obs.udp_answered or obs.mapped is None:
        notes = [] if not obs.udp_answered else ["no mapped address was observed"]
        return MappingBehavior.UNKNOWN, Method.NO_ANSWER, notes
    method = Method.RFC5780 if obs.other_address is not None else _fallback_method(obs)
    if obs.mapped in obs.local:
        return MappingBehavior.NO_NAT, method, []
    if obs.other_address is not None and obs.mapped_alternate_address is not None:
        return _rfc5780_mapping(obs), method, _rfc5780_notes(obs)
    if obs.mapped_second_server is not None:
        notes = []
        if obs.other_address is not None:
            notes.append("RFC 5780 test II got no answer; compared with a second server instead")
        same = obs.mapped_second_server == obs.mapped
        behaviour = (
            MappingBehavior.ENDPOINT_INDEPENDENT if same else MappingBehavior.DESTINATION_DEPENDENT
        )
        return behaviour, Method.TWO_SERVERS, notes
    return MappingBehavior.UNKNOWN, method, [_why_mapping_unknown(obs)]


def _fallback_method(obs: NatObservations) -> Method:
    return Method.TWO_SERVERS if obs.mapped_second_server is not None else Method.ONE_SERVER


def _rfc5780_mapping(obs: NatObservations) -> MappingBehavior:
    if obs.mapped_alternate_address == obs.mapped:
        return MappingBehavior.ENDPOINT_INDEPENDENT
    if obs.mapped_alternate_both is None:
        return MappingBehavior.DESTINATION_DEPENDENT
    if obs.mapped_alternate_both == obs.mapped_alternate_address:
        return MappingBehavior.ADDRESS_DEPENDENT
    return MappingBehavior.ADDRESS_AND_PORT_DEPENDENT


def _rfc5780_notes(obs: NatObservations) -> list[str]:
    unresolved = obs.mapped_alternate_address != obs.mapped and obs.mapped_alternate_both is None
    return ["RFC 5780 mapping test III got no answer"] if unresolved else []


def _why_mapping_unknown(obs: NatObservations) -> str:
    if obs.other_address is not None:
        return "RFC 5780 mapping test II got no answer and no second server was probed"
    return (
        "a NAT is present, but one plain STUN server cannot tell how it maps; "
        "use a server with RFC 5780 (OTHER-ADDRESS) or probe a second server"
    )


def classify_filtering(obs: NatObservations) -> FilteringBehavior:
    """RFC 5780 section 4.4: which CHANGE-REQUEST answers made it through."""
    if not obs.udp_answered:
        return FilteringBehavior.UNKNOWN
    if obs.answered_change_ip_and_port is True:
        return FilteringBehavior.ENDPOINT_INDEPENDENT
    if obs.answered_change_ip_and_port is False and obs.answered_change_port is True:
        return FilteringBehavior.ADDRESS_DEPENDENT
    if obs.answered_change_ip_and_port is False and obs.answered_change_port is False:
        return FilteringBehavior.ADDRESS_AND_PORT_DEPENDENT
    return FilteringBehavior.UNKNOWN


def classic_name(
    udp_answered: bool, mapping: MappingBehavior, filtering: FilteringBehavior
) -> ClassicName:
    """The RFC 3489 name people search for, from the RFC 5780 behaviours."""
    if not udp_answered:
        return ClassicName.UDP_BLOCKED
    if mapping is MappingBehavior.NO_NAT:
        return {
            FilteringBehavior.ENDPOINT_INDEPENDENT: ClassicName.OPEN_INTERNET,
            FilteringBehavior.UNKNOWN: ClassicName.NO_NAT_FILTERING_UNKNOWN,
        }.get(filtering, ClassicName.SYMMETRIC_UDP_FIREWALL)
    if mapping is MappingBehavior.ENDPOINT_INDEPENDENT:
        return {
            FilteringBehavior.ENDPOINT_INDEPENDENT: ClassicName.FULL_CONE,
            FilteringBehavior.ADDRESS_DEPENDENT: ClassicName.RESTRICTED_CONE,
            FilteringBehavior.ADDRESS_AND_PORT_DEPENDENT: ClassicName.PORT_RESTRICTED_CONE,
            FilteringBehavior.UNKNOWN: ClassicName.CONE_FILTERING_UNKNOWN,
        }[filtering]
    if mapping is MappingBehavior.UNKNOWN:
        return ClassicName.UNKNOWN
    return ClassicName.SYMMETRIC


def port_preservation(obs: NatObservations, mapping: MappingBehavior) -> Tristate:
    if mapping is MappingBehavior.NO_NAT:
        return Tristate.YES
    if obs.mapped is None or not obs.local:
        return Tristate.UNKNOWN
    preserved = obs.mapped.port in {local.port for local in obs.local}
    return Tristate.YES if preserved else Tristate.NO


def direct_path_works(mine: Profile, peer: Profile) -> Tristate:
    """Whether ICE finds a direct UDP path between two networks (both sides send checks).

    Two endpoint-independent mappings always meet. If one side's mapping changes per
    destination, its checks arrive from a port the other side never sent to, so the other side
    must filter by address only (or not at all). Two destination-dependent sides meet only if
    both map per address (not per port) and both filter by address at most.
    """
    sides = (mine, peer)
    if any(_is_open_internet(p) for p in sides):
        return Tristate.YES
    if any(p.mapping is MappingBehavior.UNKNOWN for p in sides):
        return Tristate.UNKNOWN
    stable = [p.mapping in _STABLE for p in sides]
    if all(stable):
        return Tristate.YES
    if any(stable):
        return _stable_side_accepts(sides[0] if stable[0] else sides[1])
    return _both_unstable_meet(mine, peer)


def _is_open_internet(profile: Profile) -> bool:
    return (
        profile.mapping is MappingBehavior.NO_NAT
        and profile.filtering is FilteringBehavior.ENDPOINT_INDEPENDENT
    )


def _stable_side_accepts(stable: Profile) -> Tristate:
    if stable.filtering is FilteringBehavior.UNKNOWN:
        return Tristate.UNKNOWN
    return Tristate.YES if stable.filtering in _OPEN_FILTERS else Tristate.NO


def _both_unstable_meet(mine: Profile, peer: Profile) -> Tristate:
    sides = (mine, peer)
    if any(p.mapping is MappingBehavior.ADDRESS_AND_PORT_DEPENDENT for p in sides):
        return Tristate.NO
    if any(p.filtering is FilteringBehavior.ADDRESS_AND_PORT_DEPENDENT for p in sides):
        return Tristate.NO
    if all(p.mapping is MappingBehavior.ADDRESS_DEPENDENT for p in sides) and all(
        p.filtering in _OPEN_FILTERS for p in sides
    ):
        return Tristate.YES
    return Tristate.UNKNOWN


def _peer_outcomes(udp_answered: bool, mine: Profile) -> dict[Tristate, tuple[str, ...]]:
    outcomes: dict[Tristate, list[str]] = {state: [] for state in Tristate}
    for name, peer in PEER_KINDS.items():
        works = direct_path_works(mine, peer) if udp_answered else Tristate.NO
        outcomes[works].append(name)
    return {state: tuple(names) for state, names in outcomes.items()}


def _turn_need(udp_answered: bool, peers: dict[Tristate, tuple[str, ...]]) -> TurnNeed:
    if not udp_answered:
        return TurnNeed.ALWAYS
    doubtful = set(peers[Tristate.NO]) | set(peers[Tristate.UNKNOWN])
    if not doubtful:
        return TurnNeed.ONLY_FOR_PEERS_WITHOUT_UDP
    if doubtful == {"symmetric"}:
        return TurnNeed.FOR_SYMMETRIC_PEERS
    if not peers[Tristate.NO]:
        return TurnNeed.UNKNOWN
    return TurnNeed.FOR_MANY_PEERS


def advise_transport(obs: NatObservations) -> TransportAdvice:
    """Which transport reaches STUN/TURN servers from here: UDP first, then TCP, then TLS/443."""
    if obs.udp_answered:
        return TransportAdvice.UDP
    if obs.tcp_answered:
        return TransportAdvice.TCP
    if obs.tls_443_answered:
        return TransportAdvice.TLS_443
    if obs.tcp_answered is False and obs.tls_443_answered is False:
        return TransportAdvice.NONE
    return TransportAdvice.UNKNOWN


def _tristate(value: bool | None) -> Tristate:
    if value is None:
        return Tristate.UNKNOWN
    return Tristate.YES if value else Tristate.NO


def _lifetime_notes(lifetime_s: float | None) -> tuple[str, ...]:
    if lifetime_s is None or lifetime_s >= _RFC4787_MIN_LIFETIME_S:
        return ()
    return (
        f"UDP mappings expire after about {lifetime_s:.0f} s, shorter than the 2 minutes "
        "RFC 4787 asks for; WebRTC's consent checks (every 5 s) keep calls open, "
        "but other UDP traffic needs keepalives",
    )


def _with_verdict(result: NatClassification) -> NatClassification:
    return replace(result, verdict=" ".join(_verdict_sentences(result)))


def _verdict_sentences(result: NatClassification) -> list[str]:
    sentences = [_behaviour_sentence(result)]
    if result.classic_name is ClassicName.UDP_BLOCKED:
        sentences.append(_no_udp_sentence(result.transport))
        return sentences
    sentences.append(_direct_sentence(result))
    sentences.append(_turn_sentence(result.turn_need, "symmetric" in result.direct_not_with))
    if result.hairpinning is Tristate.NO:
        sentences.append(
            "No hairpinning: two devices behind this NAT reach each other only over "
            "the LAN (host candidates) or through TURN."
        )
    return sentences


def _behaviour_sentence(result: NatClassification) -> str:
    name, filtering = result.classic_name, result.filtering.value
    if name is ClassicName.UDP_BLOCKED:
        return "UDP is blocked: no STUN server answered over UDP."
    if name is ClassicName.OPEN_INTERNET:
        return "No NAT and no UDP filtering (open internet)."
    if name is ClassicName.SYMMETRIC_UDP_FIREWALL:
        return (
            f"No NAT, but a firewall filters incoming UDP ({filtering}): a symmetric UDP firewall."
        )
    if name is ClassicName.NO_NAT_FILTERING_UNKNOWN:
        return "No NAT: the server saw this host's own address; filtering is unknown."
    if name in (ClassicName.UNKNOWN_NAT, ClassicName.UNKNOWN):
        return f"{name.value[0].upper()}{name.value[1:]}."
    return f"Behind a {name.value} NAT (mapping {result.mapping.value}, filtering {filtering})."


def _direct_sentence(result: NatClassification) -> str:
    parts = []
    if result.direct_with:
        parts.append("direct calls work with peers " + _peers_phrase(result.direct_with))
    if result.direct_maybe_with:
        parts.append("may work with peers " + _peers_phrase(result.direct_maybe_with))
    if result.direct_not_with:
        parts.append("fail with peers " + _peers_phrase(result.direct_not_with))
    sentence = "; ".join(parts) or "whether direct calls work cannot be told"
    return sentence[0].upper() + sentence[1:] + "."


def _peers_phrase(names: tuple[str, ...]) -> str:
    nats = [name for name in names if name != "open internet"]
    phrases = ["on the open internet"] if len(nats) < len(names) else []
    if nats:
        phrases.append(f"behind {_joined(nats)} NATs")
    return " or ".join(phrases)


def _joined(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _turn_sentence(need: TurnNeed, symmetric_fails: bool) -> str:
    return {
        TurnNeed.ONLY_FOR_PEERS_WITHOUT_UDP: (
            "TURN is needed only for peers whose own network blocks UDP."
        ),
        TurnNeed.FOR_SYMMETRIC_PEERS: (
            "Calls with peers behind symmetric NATs "
            + ("need" if symmetric_fails else "may need")
            + " TURN."
        ),
        TurnNeed.FOR_MANY_PEERS: "Many calls need TURN: deploy it and test relay candidates.",
        TurnNeed.ALWAYS: "Every call needs TURN.",
        TurnNeed.UNKNOWN: "Whether TURN is needed cannot be told from these probes.",
    }[need]


def _no_udp_sentence(transport: TransportAdvice) -> str:
    return {
        TransportAdvice.TCP: "Every call needs TURN over TCP (turn:host:port?transport=tcp).",
        TransportAdvice.TLS_443: (
            "Only TLS on port 443 gets out: every call needs TURN over TLS on 443 (turns:host:443)."
        ),
        TransportAdvice.NONE: (
            "Neither TCP nor TLS on 443 reached a server either: no call can connect from here."
        ),
        TransportAdvice.UNKNOWN: (
            "Every call needs TURN over TCP or TLS (try turn:...?transport=tcp and turns:host:443)."
        ),
        TransportAdvice.UDP: "",
    }[transport]
