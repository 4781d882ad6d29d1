"""Published STUN test vectors, transcribed byte for byte.

RFC 5769 sections 2.1-2.4 (as in its Appendix A; note the SOFTWARE and USERNAME padding
bytes are 0x20, not zero) and RFC 8489 Appendix B.1 as corrected by RFC Errata 6268
(message length 0x90, an added PASSWORD-ALGORITHM attribute, recomputed
MESSAGE-INTEGRITY-SHA256).
"""

from __future__ import annotations


def _hex(text: str) -> bytes:
    return bytes.fromhex("".join(line.split("#")[0] for line in text.splitlines()))


# RFC 5769 2.1: Binding request, short-term credentials.
RFC5769_REQUEST = _hex("""
    00 01 00 58                     # Request type and message length
    21 12 a4 42                     # Magic cookie
    b7 e7 a7 01 bc 34 d6 86 fa 87 df ae   # Transaction ID
    80 22 00 10                     # SOFTWARE attribute header
    53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74   # "STUN test client"
    00 24 00 04                     # PRIORITY attribute header
    6e 00 01 ff                     # ICE priority value
    80 29 00 08                     # ICE-CONTROLLED attribute header
    93 2f f9 b1 51 26 3b 36         # Pseudo-random tie breaker
    00 06 00 09                     # USERNAME attribute header
    65 76 74 6a 3a 68 36 76 59 20 20 20   # "evtj:h6vY" and padding (3 bytes of 0x20)
    00 08 00 14                     # MESSAGE-INTEGRITY attribute header
    9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2   # HMAC-SHA1
    80 28 00 04                     # FINGERPRINT attribute header
    e5 7a 3b cf                     # CRC32 fingerprint
""")
RFC5769_SOFTWARE_REQUEST = "STUN test client"
RFC5769_USERNAME = "evtj:h6vY"
RFC5769_PASSWORD = "VOkJxbRl1RmTxUk/WvJxBt"
RFC5769_TRANSACTION_ID = bytes.fromhex("b7e7a701bc34d686fa87dfae")

# RFC 5769 2.2: Binding success response, IPv4 XOR-MAPPED-ADDRESS.
RFC5769_IPV4_RESPONSE = _hex("""
    01 01 00 3c                     # Response type and message length
    21 12 a4 42                     # Magic cookie
    b7 e7 a7 01 bc 34 d6 86 fa 87 df ae   # Transaction ID
    80 22 00 0b                     # SOFTWARE attribute header
    74 65 73 74 20 76 65 63 74 6f 72 20   # "test vector" and padding (0x20)
    00 20 00 08                     # XOR-MAPPED-ADDRESS attribute header
    00 01 a1 47                     # Address family (IPv4) and xor'd mapped port
    e1 12 a6 43                     # Xor'd mapped IPv4 address
    00 08 00 14                     # MESSAGE-INTEGRITY attribute header
    2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7   # HMAC-SHA1
    80 28 00 04                     # FINGERPRINT attribute header
    c0 7d 4c 96                     # CRC32 fingerprint
""")
RFC5769_SOFTWARE_RESPONSE = "test vector"
RFC5769_IPV4_MAPPED = ("192.0.2.1", 32853)

# RFC 5769 2.3: Binding success response, IPv6 XOR-MAPPED-ADDRESS.
RFC5769_IPV6_RESPONSE = _hex("""
    01 01 00 48                     # Response type and message length
    21 12 a4 42                     # Magic cookie
    b7 e7 a7 01 bc 34 d6 86 fa 87 df ae   # Transaction ID
    80 22 00 0b                     # SOFTWARE attribute header
    74 65 73 74 20 76 65 63 74 6f 72 20   # "test vector" and padding (0x20)
    00 20 00 14                     # XOR-MAPPED-ADDRESS attribute header
    00 02 a1 47                     # Address family (IPv6) and xor'd mapped port
    01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9   # Xor'd mapped IPv6 address
    00 08 00 14                     # MESSAGE-INTEGRITY attribute header
    a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41   # HMAC-SHA1
    80 28 00 04                     # FINGERPRINT attribute header
    c8 fb 0b 4c                     # CRC32 fingerprint
""")
RFC5769_IPV6_MAPPED = ("2001:db8:1234:5678:11:2233:4455:6677", 32853)

# RFC 5769 2.4: Binding request with long-term credentials (MD5 key, SASLprep'ed password).
RFC5769_LONG_TERM_REQUEST = _hex("""
    00 01 00 60                     # Request type and message length
    21 12 a4 42                     # Magic cookie
    78 ad 34 33 c6 ad 72 c0 29 da 41 2e   # Transaction ID
    00 06 00 12                     # USERNAME attribute header
    e3 83 9e e3 83 88 e3 83 aa e3 83 83 e3 82 af e3 82 b9 00 00   # Username and padding
    00 15 00 1c                     # NONCE attribute header
    66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34 6f 4c 39 46 53 54 76 79 36 34 73 41
    00 14 00 0b                     # REALM attribute header
    65 78 61 6d 70 6c 65 2e 6f 72 67 00   # "example.org" and padding (1 byte)
    00 08 00 14                     # MESSAGE-INTEGRITY attribute header
    f6 70 24 65 6d d6 4a 3e 02 b8 e0 71 2e 85 c9 a2 8c a8 96 66   # HMAC-SHA1
""")
LONG_TERM_TRANSACTION_ID = bytes.fromhex("78ad3433c6ad72c029da412e")
# <U+30DE><U+30C8><U+30EA><U+30C3><U+30AF><U+30B9>, unaffected by SASLprep/OpaqueString
LONG_TERM_USERNAME = "\u30de\u30c8\u30ea\u30c3\u30af\u30b9"
# "The<U+00AD>M<U+00AA>tr<U+2168>" before preparation, "TheMatrIX" after
LONG_TERM_PASSWORD = "The\u00adM\u00aatr\u2168"
LONG_TERM_PASSWORD_PREPARED = "TheMatrIX"
LONG_TERM_REALM = "example.org"
RFC5769_NONCE = "f//499k954d6OL34oL9FSTvy64sA"

# RFC 8489 Appendix B.1 with RFC Errata 6268: USERHASH, NONCE with the nonce cookie,
# REALM, PASSWORD-ALGORITHM (SHA-256) and MESSAGE-INTEGRITY-SHA256.
RFC8489_SHA256_REQUEST = _hex("""
    00 01 00 90                     # Request type and message length
    21 12 a4 42                     # Magic cookie
    78 ad 34 33 c6 ad 72 c0 29 da 41 2e   # Transaction ID
    00 1e 00 20                     # USERHASH attribute header
    4a 3c f3 8f ef 69 92 bd a9 52 c6 78 04 17 da 0f   # Userhash value (32 bytes)
    24 81 94 15 56 9e 60 b2 05 c4 6e 41 40 7f 17 04
    00 15 00 29                     # NONCE attribute header
    6f 62 4d 61 74 4a 6f 73 32 41 41 41 43 66 2f 2f 34 39 39 6b 39 35 34 64
    36 4f 4c 33 34 6f 4c 39 46 53 54 76 79 36 34 73 41 00 00 00   # and padding (3 bytes)
    00 14 00 0b                     # REALM attribute header
    65 78 61 6d 70 6c 65 2e 6f 72 67 00   # "example.org" and padding (1 byte)
    00 1d 00 04                     # PASSWORD-ALGORITHM attribute header
    00 02 00 00                     # SHA-256, no parameters
    00 1c 00 20                     # MESSAGE-INTEGRITY-SHA256 attribute header
    b5 c7 bf 00 5b 6c 52 a2 1c 51 c5 e8 92 f8 19 24   # HMAC-SHA256 value
    13 62 96 cb 92 7c 43 14 93 09 27 8c c6 51 8e 65
""")
RFC8489_NONCE = "obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA"
RFC8489_USERHASH = bytes.fromhex("4a3cf38fef6992bda952c6780417da0f24819415569e60b205c46e41407f1704")

ALL_VECTORS: dict[str, bytes] = {
    "rfc5769-2.1": RFC5769_REQUEST,
    "rfc5769-2.2": RFC5769_IPV4_RESPONSE,
    "rfc5769-2.3": RFC5769_IPV6_RESPONSE,
    "rfc5769-2.4": RFC5769_LONG_TERM_REQUEST,
    "rfc8489-b.1": RFC8489_SHA256_REQUEST,
}
