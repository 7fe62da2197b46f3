"""Deterministic CBOR (RFC 8949 §4.2.1): one encoding per value, and a strict check of it.

Everything gatepass signs (the COSE protected header, permit claims, signed documents)
is encoded deterministically, and a verifier refuses any other encoding of the same
value, so two verifiers can never read two different things from one signed byte string:

- preferred serialization: every integer, length and tag number in its shortest head;
  floats in the shortest of 16/32/64 bits that keeps the value;
- definite lengths only;
- map keys sorted by the bytewise lexicographic order of their encodings (RFC 8949
  §4.2.1, *not* the length-first order of RFC 7049 §3.9 / §4.2.3), hence no duplicates;
- exactly one top-level item: no trailing bytes.

cbor2's ``canonical=True`` sorts map keys length-first; the two orders differ only for
maps whose keys mix major types (``{24: .., -1: ..}``) or are themselves arrays or maps.
:func:`dumps` is therefore written here; it hands scalars and scalar-only arrays to
cbor2 (whose scalar encoding is preferred serialization) and orders map keys itself.

The check decodes with cbor2 and compares the input with :func:`dumps` of the decoded
value: any difference is a refusal. Depth is counted in containers: each array, map or
tag is one level, a scalar none (``1`` has depth 0, ``[1]`` 1, ``{1: [2]}`` 2).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any, Final

import cbor2

from verifier.errors import VerifierError

#: Default nesting limit (containers) for decoded documents.
MAX_DEPTH: Final = 16


class CborInvalid(VerifierError, ValueError):
    """The bytes are not well-formed CBOR within the limits (depth, size)."""


class CborNonCanonical(VerifierError, ValueError):
    """Well-formed CBOR, but not the deterministic encoding; the message says which rule."""


def _head(major: int, n: int) -> bytes:
    mt = major << 5
    if n < 24:
        return bytes((mt | n,))
    if n < 0x100:
        return bytes((mt | 24, n))
    if n < 0x10000:
        return bytes((mt | 25,)) + n.to_bytes(2, "big")
    if n < 0x100000000:
        return bytes((mt | 26,)) + n.to_bytes(4, "big")
    return bytes((mt | 27,)) + n.to_bytes(8, "big")


_CONTAINERS: Final = (dict, list, tuple, cbor2.CBORTag)


def dumps(obj: Any) -> bytes:
    """The deterministic encoding of ``obj`` (maps, lists, tuples, str, bytes, int, float,
    bool, None and :class:`cbor2.CBORTag`)."""
    t = type(obj)
    if t is dict or isinstance(obj, Mapping):
        pairs = sorted((dumps(k), dumps(v)) for k, v in obj.items())
        return _head(5, len(pairs)) + b"".join(k + v for k, v in pairs)
    if t is list or t is tuple:
        if not any(isinstance(item, _CONTAINERS) for item in obj):
            return cbor2.dumps(obj, canonical=True)  # scalars only: no map to order
        return _head(4, len(obj)) + b"".join(dumps(item) for item in obj)
    if t is cbor2.CBORTag:
        return _head(6, obj.tag) + dumps(obj.value)
    return cbor2.dumps(obj, canonical=True)


def _decode(data: bytes, max_depth: int, *, strict: bool) -> tuple[Any, int]:
    fp = io.BytesIO(data)
    try:
        obj = cbor2.CBORDecoder(
            fp, max_depth=max_depth, allow_indefinite=not strict, allow_duplicate_keys=not strict
        ).decode()
    except (cbor2.CBORDecodeError, RecursionError, MemoryError, OverflowError) as exc:
        raise CborInvalid(f"invalid CBOR ({exc})") from None
    except Exception as exc:  # cbor2 semantic decoders may raise anything on hostile tags
        raise CborInvalid(f"invalid CBOR ({type(exc).__name__})") from None
    return obj, fp.tell()


def why_not_canonical(data: bytes, obj: Any, *, max_depth: int = MAX_DEPTH) -> str:
    """Which deterministic-encoding rule ``data`` (decoding to ``obj``) breaks (error path)."""
    try:
        _, end = _decode(data, max_depth, strict=True)
    except CborInvalid as exc:
        text = str(exc).lower()
        if "duplicate" in text:
            return "duplicate map key"
        if "indefinite" in text:
            return "indefinite-length item"
        return f"not deterministic CBOR ({exc})"
    if end != len(data):
        return f"{len(data) - end} trailing bytes after the CBOR item"
    try:
        expected = dumps(obj)
    except Exception:
        return "item cannot be re-encoded"
    if len(expected) == len(data):
        return "map keys not in bytewise lexicographic order of their encodings"
    return "integer, length or float not in its shortest form"


def loads(data: bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Decode ``data`` and check it is the deterministic encoding of what it decodes to.

    Raises :class:`CborInvalid` (not CBOR, too deep) or :class:`CborNonCanonical`.
    """
    obj, _ = _decode(data, max_depth, strict=False)
    try:
        again = dumps(obj)
    except Exception as exc:  # a decoded tag value cbor2 cannot encode back: not ours
        raise CborNonCanonical(f"item cannot be re-encoded ({type(exc).__name__})") from None
    if again != data:
        raise CborNonCanonical(why_not_canonical(data, obj, max_depth=max_depth))
    return obj
