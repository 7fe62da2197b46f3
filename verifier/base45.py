"""Base45 (RFC 9285), strict: anything outside the alphabet or any overflow is refused."""

from __future__ import annotations

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"

_VALUE = {c: i for i, c in enumerate(ALPHABET)}


def _build_triples() -> dict[str, bytes]:
    # Every valid 3-character group maps straight to its 2 bytes: decoding becomes one
    # dict lookup per group instead of arithmetic in Python (≈4x faster on permits).
    table: dict[str, bytes] = {}
    for n in range(65536):
        c, rest = divmod(n, 45 * 45)
        b, a = divmod(rest, 45)
        table[ALPHABET[a] + ALPHABET[b] + ALPHABET[c]] = n.to_bytes(2, "big")
    return table


_TRIPLES: dict[str, bytes] | None = None


class Base45Error(ValueError):
    """Text is not valid Base45."""


def encode(data: bytes) -> str:
    out: list[str] = []
    for i in range(0, len(data) - 1, 2):
        n = data[i] * 256 + data[i + 1]
        c, rest = divmod(n, 45 * 45)
        b, a = divmod(rest, 45)
        out.append(ALPHABET[a] + ALPHABET[b] + ALPHABET[c])
    if len(data) % 2:
        b, a = divmod(data[-1], 45)
        out.append(ALPHABET[a] + ALPHABET[b])
    return "".join(out)


def decode(text: str) -> bytes:
    global _TRIPLES
    if _TRIPLES is None:
        _TRIPLES = _build_triples()
    table = _TRIPLES
    n = len(text)
    full = n - n % 3
    try:
        head = b"".join([table[text[i : i + 3]] for i in range(0, full, 3)])
    except KeyError:
        raise Base45Error("invalid Base45 group (bad character or value above 65535)") from None
    rem = n - full
    if rem == 0:
        return head
    if rem == 1:
        raise Base45Error("Base45 text length leaves a dangling character")
    try:
        v = _VALUE[text[full]] + 45 * _VALUE[text[full + 1]]
    except KeyError:
        raise Base45Error("invalid Base45 character") from None
    if v > 255:
        raise Base45Error("Base45 final pair above 255")
    return head + bytes((v,))
