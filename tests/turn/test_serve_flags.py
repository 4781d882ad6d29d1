"""``turn-relay serve`` flags become the same document a TOML config is, validated the same way."""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from turnkit_testing.tls import make_certificate

from turn_relay import cli
from turn_relay.config import ChallengeBudgetConfig, ConfigError, ServerConfig, TurnConfig
from turn_relay.config.flags import ServeFlags, load, parse_port_range


def test_defaults_without_a_config_are_loopback_friendly() -> None:
    config = load(None, ServeFlags())
    assert config.server.realm == "turnkit"
    assert config.listen.addresses == ("127.0.0.1",)
    assert (config.listen.udp_port, config.listen.tcp_port, config.listen.tls_port) == (
        3478,
        3478,
        0,
    )
    assert config.relay.addresses == ("127.0.0.1",)


def test_flags_fill_every_section() -> None:
    flags = ServeFlags(
        realm="example.org",
        public_host="turn.example.org",
        listen=("127.0.0.1", "::1"),
        port=3479,
        relay_addresses=("127.0.0.1",),
        external=("203.0.113.7",),
        port_range=(40000, 40999),
        secret_env="TURN_SECRETS",
        allowed_peers=("127.0.0.0/8",),
        denied_peers=("127.0.0.9/32",),
        max_allocations_per_user=3,
        max_allocations=100,
    )
    config = load(None, flags)
    assert (config.server.realm, config.server.public_host) == ("example.org", "turn.example.org")
    assert config.listen.addresses == ("127.0.0.1", "::1")
    assert config.relay.advertised("127.0.0.1") == "203.0.113.7"
    assert (config.relay.port_min, config.relay.port_max) == (40000, 40999)
    assert config.auth.rest_secrets_env == "TURN_SECRETS"
    assert config.peer_policy.allowed_peers == ("127.0.0.0/8",)
    assert config.peer_policy.denied_peers == ("127.0.0.9/32",)
    assert (config.quotas.max_allocations_per_user, config.quotas.max_allocations) == (3, 100)


def test_relay_defaults_to_each_concrete_listen_address() -> None:
    config = load(None, ServeFlags(listen=("127.0.0.1", "::1")))
    assert config.relay.addresses == ("127.0.0.1", "::1")


def test_wildcard_listen_needs_a_relay_address() -> None:
    with pytest.raises(ConfigError, match=r"relay\.addresses"):
        load(None, ServeFlags(listen=("0.0.0.0",)))
    config = load(None, ServeFlags(listen=("0.0.0.0",), relay_addresses=("127.0.0.1",)))
    assert config.relay.addresses == ("127.0.0.1",)


def test_flags_override_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(
        '[server]\nrealm = "file"\n[relay]\naddresses = ["127.0.0.1"]\n[listen]\nudp_port = 4000\n'
    )
    config = load(path, ServeFlags(port=5000, allowed_peers=("10.0.0.0/8",)))
    assert config.server.realm == "file"
    assert (config.listen.udp_port, config.listen.tcp_port) == (5000, 5000)
    assert config.peer_policy.allowed_peers == ("10.0.0.0/8",)


def test_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"relay\.port_range"):
        load(None, ServeFlags(port_range=(2000, 1000)))
    with pytest.raises(ConfigError, match="LOCAL=ADVERTISED"):
        load(None, ServeFlags(listen=("127.0.0.1", "::1"), external=("203.0.113.7",)))
    with pytest.raises(ConfigError, match="TOML syntax"):
        bad = tmp_path / "bad.toml"
        bad.write_text("[server\n")
        load(bad, ServeFlags())


@pytest.mark.parametrize("text", ["49152", "a-b", "1-", "-2"])
def test_port_range_syntax(text: str) -> None:
    with pytest.raises(ValueError, match="MIN-MAX"):
        parse_port_range(text)


def test_serve_check_with_flags_only(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.write_text("s3cret\n")
    result = CliRunner().invoke(
        cli.main,
        ["serve", "--check", "--listen", "127.0.0.1", "--secret-file", str(secrets),
         "--allowed-peer", "127.0.0.0/8", "--port-range", "40000-40999"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "flags: OK (realm 'turnkit')" in result.output


def test_serve_passes_rfc5766_channels_in_the_config_and_the_log_level(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets"
    secrets.write_text("s3cret\n")
    seen: list[tuple[bool, dict[str, object]]] = []
    monkeypatch.setattr(
        cli,
        "start_server",
        lambda config, secrets, **options: seen.append(
            (config.allocation.rfc5766_channels, options)
        ),
    )
    result = CliRunner().invoke(
        cli.main,
        ["serve", "--secret-file", str(secrets), "--rfc5766-channels", "--log-level", "debug"],
    )
    assert result.exit_code == 0, result.output
    assert seen == [(True, {"log_level": "debug"})]


# --- one set of defaults, with or without --config (a user test found them differing) ----------


def write(tmp_path: Path, text: str, name: str = "relay.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "flags",
    [
        ServeFlags(),
        ServeFlags(listen=("127.0.0.1", "::1"), port=3479),
        ServeFlags(realm="example.org", api_port=8081, api_key_file=Path("k")),
        ServeFlags(listen=("0.0.0.0",), relay_addresses=("127.0.0.1",), public_host="h.test"),
        ServeFlags(rfc5766_channels=True, challenge_rate=5.0, challenge_burst=20, workers=2),
    ],
)
def test_flags_alone_and_flags_over_an_empty_file_agree(tmp_path: Path, flags: ServeFlags) -> None:
    assert load(write(tmp_path, ""), flags) == load(None, flags)
    unrelated = write(tmp_path, "[metrics]\nenabled = true\n", "other.toml")
    assert load(unrelated, flags) == load(None, flags)


def test_a_file_may_omit_realm_listen_and_relay(tmp_path: Path) -> None:
    config = load(write(tmp_path, '[auth]\nrest_secrets_env = "S"\n'), ServeFlags())
    assert config.server.realm == "turnkit"
    assert config.listen.addresses == ("127.0.0.1",)
    assert config.relay.addresses == ("127.0.0.1",)


def test_file_overrides_defaults_and_flags_override_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[server]\nrealm = "file"\npublic_host = "file.test"\nworkers = 3\n'
        '[listen]\naddresses = ["127.0.0.2"]\n'
        "[allocation]\nrfc5766_channels = true\n"
        "[auth.unauthorized_limit]\nper_second = 2.0\nburst = 30\nmax_sources = 99\n",
    )
    from_file = load(path, ServeFlags())
    assert from_file.server == ServerConfig("file", "file.test", 3)
    assert from_file.relay.addresses == ("127.0.0.2",)  # defaults to the file's listen address
    assert from_file.allocation.rfc5766_channels
    old_table = ChallengeBudgetConfig(unproven_rate=2.0, unproven_burst=30, max_sources=99)
    assert from_file.auth.challenge_budget == old_table
    flags = ServeFlags(
        realm="flag",
        public_host="flag.test",
        workers=1,
        listen=("127.0.0.3",),
        rfc5766_channels=False,
        challenge_rate=0.5,
        challenge_burst=4,
    )
    overridden = load(path, flags)
    assert overridden.server == ServerConfig("flag", "flag.test", 1)
    assert overridden.relay.addresses == ("127.0.0.3",)
    assert not overridden.allocation.rfc5766_channels
    assert overridden.auth.challenge_budget == ChallengeBudgetConfig(
        unproven_rate=0.5, unproven_burst=4, max_sources=99
    )  # the rest kept


def test_api_listen_and_key_from_the_environment() -> None:
    config = load(
        None, ServeFlags(api_port=8080, api_listen="127.0.0.2", api_key_env="TURNKIT_API_KEY")
    )
    assert (config.api.enabled, config.api.listen, config.api.port) == (True, "127.0.0.2", 8080)
    assert (config.api.api_key_file, config.api.api_key_env) == (None, "TURNKIT_API_KEY")


def test_a_secret_source_flag_replaces_the_files_other_source(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[auth]\nrest_secrets_file = "/etc/turnkit/rest-secret"\n'
        '[api]\nenabled = true\napi_key_file = "/etc/turnkit/api-key"\n',
    )
    config = load(path, ServeFlags(secret_env="TURN_SECRETS", api_key_env="TURNKIT_API_KEY"))
    assert (config.auth.rest_secrets_file, config.auth.rest_secrets_env) == (None, "TURN_SECRETS")
    assert (config.api.api_key_file, config.api.api_key_env) == (None, "TURNKIT_API_KEY")
    kept = load(path, ServeFlags(secret_file=tmp_path / "other"))
    assert kept.auth.rest_secrets_file == tmp_path / "other"
    assert kept.api.api_key_file == Path("/etc/turnkit/api-key")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ServeFlags(secret_file=Path("s"), secret_env="S"),
            "give --secret-file or --secret-env, not both",
        ),
        (
            ServeFlags(api_port=8080, api_key_file=Path("k"), api_key_env="K"),
            "give --api-key-file or --api-key-env, not both",
        ),
        (ServeFlags(api_port=8080, api_listen="api.example.com"), r"api\.listen"),
        (ServeFlags(api_port=8080, api_key_env="1BAD"), "not an environment variable name"),
    ],
)
def test_bad_api_and_secret_flags_are_named(flags: ServeFlags, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(None, flags)


def test_serve_check_shows_the_api_address(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.write_text("s3cret\n")
    result = CliRunner().invoke(
        cli.main,
        ["serve", "--check", "--secret-file", str(secrets), "--api-port", "8080",
         "--api-listen", "127.0.0.2", "--api-key-env", "TURNKIT_TEST_API_KEY"],
        env={"TURNKIT_TEST_API_KEY": "an-api-key-of-24-chars!!"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "api:     http://127.0.0.2:8080 hands out turn:127.0.0.1:3478" in result.output


def test_external_address_alone_uses_the_derived_relay_address() -> None:
    config = load(None, ServeFlags(external=("203.0.113.7",)))
    assert config.relay.advertised("127.0.0.1") == "203.0.113.7"
    with pytest.raises(ConfigError, match=r"relay\.addresses: required when listen"):
        load(None, ServeFlags(listen=("0.0.0.0",), external=("203.0.113.7",)))


# --- --help shows the real defaults -------------------------------------------------------------

# option -> the value its "[default: ...]" must show, read from a loaded config
SHOWN: dict[str, Callable[[TurnConfig], str]] = {
    "realm": lambda c: c.server.realm,
    "listen": lambda c: ", ".join(c.listen.addresses),
    "port": lambda c: f"{c.listen.udp_port}" if c.listen.udp_port == c.listen.tcp_port else "?",
    "tls_port": lambda c: f"{c.listen.tls_port} = off",
    "port_range": lambda c: f"{c.relay.port_min}-{c.relay.port_max}",
    "rfc5766_channels": lambda c: (
        "--rfc5766-channels" if c.allocation.rfc5766_channels else "--rfc8656-channels"
    ),
    "challenge_rate": lambda c: str(c.auth.challenge_budget.unproven_rate),
    "challenge_burst": lambda c: str(c.auth.challenge_budget.unproven_burst),
    "proven_challenge_rate": lambda c: str(c.auth.challenge_budget.proven_rate),
    "proven_challenge_burst": lambda c: str(c.auth.challenge_budget.proven_burst),
    "challenge_proof_lifetime": lambda c: str(c.auth.challenge_budget.proof_lifetime),
    "challenge_total_rate": lambda c: str(c.auth.challenge_budget.total_rate),
    "max_allocations_per_user": lambda c: str(c.quotas.max_allocations_per_user),
    "max_allocations": lambda c: str(c.quotas.max_allocations),
    "workers": lambda c: str(c.server.workers),
    "api_listen": lambda c: c.api.listen,
    "kernel_offload": lambda c: c.offload.mode,
}
# defaults that are a rule rather than a value (tested above and in test_relay_config)
DESCRIBED = {
    "relay_address": "the first --listen address of each family",
    "public_host": "each --listen address",
}


def shown_defaults() -> dict[str, str]:
    found: dict[str, str] = {}
    for param in cli.serve.params:
        text = " ".join((getattr(param, "help", None) or "").split())
        match = re.search(r"\[default: ([^\]]*)\]", text)
        if match and param.name is not None:
            found[param.name] = match.group(1)
    return found


def test_every_default_in_help_is_the_real_one_with_and_without_a_file(tmp_path: Path) -> None:
    shown = shown_defaults()
    assert set(shown) == set(SHOWN) | set(DESCRIBED), "register new defaults in SHOWN"
    for config in (load(None, ServeFlags()), load(write(tmp_path, ""), ServeFlags())):
        for name, value_of in SHOWN.items():
            assert shown[name] == value_of(config), name
    for name, rule in DESCRIBED.items():
        assert shown[name].startswith(rule), name
    help_text = " ".join(CliRunner().invoke(cli.main, ["serve", "--help"]).output.split())
    assert "[default: turnkit]" in help_text and "[default: 127.0.0.1]" in help_text


def test_api_port_help_names_what_it_needs() -> None:
    help_text = " ".join(CliRunner().invoke(cli.main, ["serve", "--help"]).output.split())
    api_port = help_text.split("--api-port PORT", 1)[1].split("--api-key-file FILE", 1)[0]
    assert "Needs --api-key-file" in api_port and "--public-host" in api_port


# --- every example in `serve --help` works as written ------------------------------------------


def help_examples() -> list[str]:
    text = CliRunner().invoke(cli.main, ["serve", "--help"], terminal_width=200).output
    block = text.split("Examples:", 1)[1].split("Options:", 1)[0]
    lines = [line.strip() for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_help_examples_are_the_expected_commands() -> None:
    commands = [line.split()[0] for line in help_examples()]
    assert commands == [
        "head",
        "turn-relay",
        "head",
        "turn-relay",
        "curl",
        "turn-relay",
        "turn-relay",
        "turn-relay",
    ]


def test_help_examples_validate_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each serve example passes --check in a fresh directory (the deployment one with an
    edited copy of the example config at its path); the API one hands out the URLs its
    comment promises. (Running them for real: see the report; ports 3478/8080 are fixed.)"""
    monkeypatch.chdir(tmp_path)
    deployment = tmp_path / "turn_relay.toml"
    example = Path(__file__).resolve().parents[2] / "configs" / "turn_relay.example.toml"
    edited = example.read_text().replace("/etc/turnkit/", f"{tmp_path}/")
    deployment.write_text(edited)
    for name in ("rest-secrets", "api-key", "users"):
        (tmp_path / name).write_text("example:0123456789abcdef\n")
        (tmp_path / name).chmod(0o600)
    pair = make_certificate(tmp_path / "tls", ("turn.example.com",))  # --check loads it
    pair.cert.rename(tmp_path / "tls" / "fullchain.pem")
    pair.key.rename(tmp_path / "tls" / "privkey.pem")
    outputs = []
    for line in help_examples():
        if line.startswith("head"):
            subprocess.run(line, shell=True, check=True, cwd=tmp_path)
        elif line.startswith("turn-relay serve"):
            args = shlex.split(line.replace("/etc/turnkit/turn_relay.toml", str(deployment)))[1:]
            if "--check" not in args:
                args.append("--check")
            result = CliRunner().invoke(cli.main, args)
            assert result.exit_code == 0, (line, result.output)
            outputs.append(result.output)
    assert len(outputs) == 4
    assert "hands out turn:127.0.0.1:3478?transport=udp" in outputs[1]
    assert "hands out turn:turn.example.com:3478?transport=udp" in outputs[2]
