"""The text envelope: ``GP1:`` + Base45(COSE_Sign1, zlib-compressed only when that shrinks it).

After Base45 decoding, the first byte tells the two forms apart: ``0xD2`` (CBOR tag
18) is a bare COSE_Sign1, ``0x78`` (zlib CMF, deflate, 32 KiB window) a compressed
one. A compressed form is accepted only when it is byte-for-byte what
``zlib.compress(cose, 9)`` gives and shorter than the bare form: deflate is malleable
(spare bits, alternative codings), and a permit must have exactly one text.
"""

from __future__ import annotations

import re
import zlib
from typing import Final

from verifier import base45
from verifier.errors import PermitRefused, Reason

PREFIX: Final = "GP1:"
_OTHER_VERSION: Final = re.compile(r"GP[0-9]+:")
#: Longest text accepted, checked before any work (a version-40 QR holds 4,296 characters).
MAX_TEXT_LEN: Final = 1200
#: Largest COSE_Sign1 accepted after Base45 decoding and decompression.
MAX_COSE_LEN: Final = 1024
ZLIB_LEVEL: Final = 9


def wrap(cose_bytes: bytes) -> str:
    """Text for a signed COSE_Sign1: compressed only if that is shorter."""
    packed = zlib.compress(cose_bytes, ZLIB_LEVEL)
    body = packed if len(packed) < len(cose_bytes) else cose_bytes
    return PREFIX + base45.encode(body)


def ascii_text(raw: str | bytes, limit: int, what: str = "payload") -> str:
    """``raw`` as text of at most ``limit`` ASCII characters (bytes input: ``limit`` bytes),
    checked before any other work; raise :class:`PermitRefused` naming ``what``."""
    if type(raw) is str:  # the usual case first
        text = raw
    elif isinstance(raw, (bytes, bytearray, memoryview)):
        if len(raw) > limit:
            raise PermitRefused(Reason.TOO_LARGE, f"{what} above {limit} bytes")
        try:
            text = bytes(raw).decode("ascii")
        except UnicodeDecodeError:
            raise PermitRefused(Reason.BAD_ENCODING, f"{what} is not ASCII text") from None
    elif isinstance(raw, str):
        text = str(raw)
    else:
        raise PermitRefused(Reason.MALFORMED, "payload must be text or bytes")
    if len(text) > limit:
        raise PermitRefused(Reason.TOO_LARGE, f"{what} above {limit} characters")
    return text


def unwrap(raw: str | bytes) -> bytes:
    """COSE bytes from permit text; raise :class:`PermitRefused` (never anything else)."""
    text = ascii_text(raw, MAX_TEXT_LEN)
    if not text.startswith(PREFIX):
        if _OTHER_VERSION.match(text):
            raise PermitRefused(
                Reason.UNSUPPORTED_VERSION, f"prefix {text.split(':', 1)[0]}: is not {PREFIX}"
            )
        raise PermitRefused(Reason.MALFORMED, f"payload does not start with {PREFIX}")
    try:
        data = base45.decode(text[len(PREFIX) :])
    except base45.Base45Error as exc:
        raise PermitRefused(Reason.BAD_ENCODING, str(exc)) from None
    if not data:
        raise PermitRefused(Reason.MALFORMED, "empty payload")
    first = data[0]
    if first == 0xD2:
        return data
    if first == 0x78:
        return _inflate(data)
    raise PermitRefused(Reason.BAD_COSE, f"payload starts with 0x{first:02x}, not COSE_Sign1")


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, MAX_COSE_LEN + 1)
    except zlib.error as exc:
        raise PermitRefused(Reason.BAD_ENCODING, f"zlib: {exc}") from None
    if len(out) > MAX_COSE_LEN or inflater.unconsumed_tail:
        raise PermitRefused(Reason.DECOMPRESSION_LIMIT, f"decompresses beyond {MAX_COSE_LEN} bytes")
    if not inflater.eof or inflater.unused_data:
        raise PermitRefused(Reason.BAD_ENCODING, "zlib stream truncated or followed by junk")
    if len(data) >= len(out) or zlib.compress(out, ZLIB_LEVEL) != data:
        raise PermitRefused(Reason.BAD_ENCODING, "non-canonical zlib stream")
    return out
