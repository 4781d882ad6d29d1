"""Log lines ops can search: the core's events through the shell's event log, formatted by
`stun_server.logfmt` as text (key=value) or JSON, and repeated refusals aggregated."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from turn_testkit import PEER, T0, Client, allocated, error_code, make_core

from stun_server import logfmt
from turn_relay.core.allocation import Transport
from turn_relay.core.events import Refusal
from turn_relay.core.relay import RelayCore
from turn_relay.shell.eventlog import EventLog


@pytest.fixture
def log_lines() -> Iterator[tuple[io.StringIO, logging.Handler]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    events = logging.getLogger("turn_relay.events")
    events.addHandler(handler)
    old_level = events.level
    events.setLevel(logging.INFO)
    try:
        yield stream, handler
    finally:
        events.removeHandler(handler)
        events.setLevel(old_level)


def logged_core(window: float = 60.0) -> tuple[RelayCore, EventLog]:
    core = make_core()
    log = EventLog(window=window)
    core.observer = log
    return core, log


def json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_refused_login_is_one_json_line_naming_its_reason(
    log_lines: tuple[io.StringIO, logging.Handler],
) -> None:
    stream, handler = log_lines
    handler.setFormatter(logfmt.formatter("json"))
    core, _ = logged_core()
    client = Client.rest(core, T0)
    client.password = "wrong"
    assert error_code(client.allocate(now=T0)) == 401
    (line,) = json_lines(stream)
    assert set(line) == {
        "ts", "level", "logger", "pid", "msg",
        "method", "code", "reason", "username", "source", "transport",
    }  # fmt: skip
    assert line["msg"] == "refused" and line["level"] == "info"
    assert line["logger"] == "turn_relay.events"
    assert (line["reason"], line["code"], line["method"]) == ("bad-integrity", 401, "allocate")
    assert line["username"] == client.username
    assert line["source"] == "127.0.0.1:40000" and line["transport"] == "udp"
    assert str(line["ts"]).endswith("Z")


def test_allocation_created_and_deleted_in_text(
    log_lines: tuple[io.StringIO, logging.Handler],
) -> None:
    stream, handler = log_lines
    handler.setFormatter(logfmt.formatter("text"))
    core, _ = logged_core()
    client = allocated(core)
    relay = client.relay()
    client.bind(0x4000, PEER, now=T0 + 1)
    client.channel_data(0x4000, b"x" * 100, now=T0 + 2)
    core.receive_from_peer(b"y" * 40, relay, PEER, T0 + 2)
    client.refresh(0, now=T0 + 12.5)
    created, deleted = stream.getvalue().splitlines()
    session = f"127.0.0.1:{relay[1]}"
    assert " INFO turn_relay.events[" in created
    assert created.endswith(
        f"]: allocation-created session={session} user=alice username={client.username}"
        f" client=127.0.0.1:40000 transport=udp relayed={session}"
    )
    assert deleted.endswith(
        f"]: allocation-deleted session={session} user=alice username={client.username}"
        f" client=127.0.0.1:40000 transport=udp relayed={session} reason=deleted"
        " duration=12.5 bytes_to_peer=100 bytes_to_client=40 packets_to_peer=1"
        " packets_to_client=1"
    )


def test_text_values_with_spaces_are_quoted() -> None:
    record = logging.LogRecord("x", logging.INFO, "f", 1, "refused", None, None)
    record.fields = {"detail": 'peer 10.0.0.1: private "RFC 1918"', "code": 403}
    line = logfmt.TextFormatter().format(record)
    assert line.endswith(' refused detail="peer 10.0.0.1: private \\"RFC 1918\\"" code=403')


def test_a_flood_of_one_reason_from_one_source_is_one_line_per_window(
    log_lines: tuple[io.StringIO, logging.Handler],
) -> None:
    stream, handler = log_lines
    handler.setFormatter(logfmt.formatter("json"))
    core, log = logged_core(window=10.0)
    client = Client.rest(core, T0)
    client.password = "wrong"
    for step in range(25):  # a bounded flood: 25 refusals in 2.5 s
        client.nonce = None
        client.allocate(now=T0 + step * 0.1)
    lines = json_lines(stream)
    assert [line["msg"] for line in lines] == ["refused"]
    log.flush(T0 + 10.0)
    summary = json_lines(stream)[-1]
    assert summary["msg"] == "refused-repeated: 24 more like this"
    assert (summary["repeats"], summary["reason"], summary["source_ip"]) == (
        24,
        "bad-integrity",
        "127.0.0.1",
    )
    log.flush(T0 + 20.0)  # the flood stopped: nothing more, and the key is forgotten
    assert len(json_lines(stream)) == 2
    client.nonce = None
    client.allocate(now=T0 + 21)
    assert json_lines(stream)[-1]["msg"] == "refused"


def test_a_policy_audit_of_23_denied_peers_is_two_lines() -> None:
    """``rtccheck policy`` asks for permissions to 23 denied peers: that used to be 23
    warnings; now one refusal line and one count."""
    stream = io.StringIO()
    events = logging.getLogger("turn_relay.events")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logfmt.formatter("text"))
    events.addHandler(handler)
    events.setLevel(logging.INFO)
    try:
        core = make_core(allowed_peers=())
        log = EventLog(window=60.0)
        client = allocated(core)
        core.observer = log
        for index in range(23):
            assert error_code(client.permit((f"10.0.0.{index + 1}", 9), now=T0 + index)) == 403
        log.flush(T0 + 60)
    finally:
        events.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert "refused method=create_permission code=403 reason=peer-denied" in lines[0]
    assert "refused-repeated: 22 more like this" in lines[1] and "repeats=22" in lines[1]


def test_the_aggregator_folds_sources_beyond_its_key_limit() -> None:
    log = EventLog(window=60.0, max_keys=2)
    refusal = Refusal("allocate", 401, "bad-integrity", None, ("198.51.100.1", 1), Transport.UDP)
    for index in range(5):
        source = (f"198.51.100.{index + 1}", 1)
        log.request_refused(refusal._replace(source=source), T0)
    assert len(log.aggregator) == 3  # two sources, then "*" for the rest
    (folded,) = [w for w in log.aggregator.due(T0 + 60) if w[0][1] == "*"]
    assert folded[1] == 2  # the 3rd source opened "*" (logged), the 4th and 5th counted


def test_log_format_is_one_of_two() -> None:
    with pytest.raises(ValueError, match="text, json"):
        logfmt.formatter("xml")
