"""The one STUN/TURN wire codec of turnkit (sans-I/O: no sockets, clocks or asyncio).

Public API::

    from stun_server.wire import Message, Method, MessageClass, parse, encode
    from stun_server.wire import attributes as attrs
"""

from . import attributes
from .attributes import (
    FAMILY_IPV4,
    FAMILY_IPV6,
    PROTOCOL_TCP,
    PROTOCOL_UDP,
    AnyAttribute,
    UnknownAttribute,
)
from .channel_data import (
    DatagramKind,
    classify,
    encode_channel_data,
    is_valid_channel,
    parse_channel_data,
)
from .errors import REASON_PHRASES, StunDecodeError, StunError
from .integrity import long_term_key, opaque_string, sasl_prep, short_term_key, userhash
from .message import (
    HEADER_LENGTH,
    Message,
    MessageClass,
    Method,
    encode,
    for_transaction,
    is_stun,
    message_type,
    new_transaction_id,
    parse,
    split_message_type,
    stream_frame_length,
    verify_integrity,
)

__all__ = [
    "FAMILY_IPV4",
    "FAMILY_IPV6",
    "HEADER_LENGTH",
    "PROTOCOL_TCP",
    "PROTOCOL_UDP",
    "REASON_PHRASES",
    "AnyAttribute",
    "DatagramKind",
    "Message",
    "MessageClass",
    "Method",
    "StunDecodeError",
    "StunError",
    "UnknownAttribute",
    "attributes",
    "classify",
    "encode",
    "encode_channel_data",
    "for_transaction",
    "is_stun",
    "is_valid_channel",
    "long_term_key",
    "message_type",
    "new_transaction_id",
    "opaque_string",
    "parse",
    "parse_channel_data",
    "sasl_prep",
    "short_term_key",
    "split_message_type",
    "stream_frame_length",
    "userhash",
    "verify_integrity",
]
