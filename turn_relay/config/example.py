"""The example config shipped inside the package (``configs/turn_relay.example.toml`` links
to it), printed by ``turn-relay example-config``."""

from __future__ import annotations

from importlib import resources

EXAMPLE_FILE = "turn_relay.example.toml"


def example_config() -> str:
    """The text of the example config, exactly as shipped."""
    return resources.files(__package__).joinpath(EXAMPLE_FILE).read_text(encoding="utf-8")
