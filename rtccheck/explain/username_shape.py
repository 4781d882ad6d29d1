"""What a TURN username looks like: a well-formed REST username, or one of the usual mistakes.

The TURN REST scheme writes ``<expiry-unix-seconds><separator><user>`` (separator ``:`` unless
the server is configured otherwise). Common mistakes: user and expiry reversed, another
separator, or milliseconds instead of seconds. Anything without a timestamp is a static
(long-term) username.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from turn_relay.auth.credentials import parse_username

_LEADING_STAMP = re.compile(r"^(\d{9,13})([^A-Za-z0-9])(.*)$", re.DOTALL)
_TRAILING_STAMP = re.compile(r"^(.*?)([^A-Za-z0-9])(\d{9,13})$", re.DOTALL)
_MILLISECONDS_FROM = 100_000_000_000  # year 5138 in seconds; 1973 in milliseconds


class Shape(StrEnum):
    REST = "rest"
    REST_MILLISECONDS = "rest-milliseconds"
    WRONG_SEPARATOR = "wrong-separator"
    REVERSED = "reversed"
    REVERSED_WRONG_SEPARATOR = "reversed-wrong-separator"
    STATIC = "static"


@dataclass(frozen=True)
class UsernameShape:
    shape: Shape
    expiry: int | None = None
    user: str | None = None
    separator_found: str | None = None

    @property
    def is_rest(self) -> bool:
        return self.shape in (Shape.REST, Shape.REST_MILLISECONDS)


def analyse_username(username: str, separator: str) -> UsernameShape:
    """Classify ``username`` against the REST scheme with the server's ``separator``."""
    parsed = parse_username(username, separator)
    if parsed is not None:
        shape = Shape.REST_MILLISECONDS if parsed.expires_at >= _MILLISECONDS_FROM else Shape.REST
        return UsernameShape(shape, parsed.expires_at, parsed.user, separator)
    leading = _LEADING_STAMP.match(username)
    if leading and leading.group(2) != separator:
        stamp, found, user = leading.groups()
        return UsernameShape(Shape.WRONG_SEPARATOR, int(stamp), user, found)
    trailing = _TRAILING_STAMP.match(username)
    if trailing and trailing.group(1):
        user, found, stamp = trailing.groups()
        shape = Shape.REVERSED if found == separator else Shape.REVERSED_WRONG_SEPARATOR
        return UsernameShape(shape, int(stamp), user, found)
    return UsernameShape(Shape.STATIC, user=username)
