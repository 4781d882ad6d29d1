"""Building and signing the relay's responses to control requests."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from stun_server.wire import Message, MessageClass, encode
from stun_server.wire import attributes as attrs
from stun_server.wire.errors import REASON_PHRASES


class RequestError(Exception):
    """Raised by a method handler: answer with ``code`` (and ``extra`` attributes).

    ``reason``: the tag logs and the observer get (default: the reason phrase, hyphenated).
    """

    def __init__(
        self, code: int, detail: str = "", *extra: attrs.AnyAttribute, reason: str = ""
    ) -> None:
        self.code = code
        self.detail = detail
        self.extra = extra
        self.reason = reason or "-".join(REASON_PHRASES.get(code, "Error").lower().split())
        super().__init__(f"{code} {REASON_PHRASES.get(code, 'Error')}: {detail}")


@dataclass(frozen=True, slots=True)
class Signing:
    """How to finish a response: integrity key and algorithm, FINGERPRINT, SOFTWARE."""

    key: bytes | None = None
    integrity: str = "sha1"
    fingerprint: bool = False
    software: str | None = None


@functools.lru_cache(maxsize=8)
def _software(name: str) -> attrs.Software:
    return attrs.Software(name)  # frozen: one object serves every response


def success(request: Message, *attributes: attrs.AnyAttribute) -> Message:
    return Message(request.method, MessageClass.SUCCESS, request.transaction_id, list(attributes))


def error(request: Message, code: int, *attributes: attrs.AnyAttribute) -> Message:
    found = [attrs.ErrorCode(code, REASON_PHRASES.get(code, "Error")), *attributes]
    return Message(request.method, MessageClass.ERROR, request.transaction_id, found)


def finish(message: Message, signing: Signing) -> bytes:
    if signing.software:
        message.attributes.append(_software(signing.software))
    return encode(
        message,
        key=signing.key,
        integrity=signing.integrity,
        fingerprint=signing.fingerprint,
    )
