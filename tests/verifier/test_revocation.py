"""Revocation: signed snapshots and deltas, versions, and the compact id set."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest

from verifier import DocumentRefused, Reason, RevocationSet
from verifier.documents import sign_document
from verifier.revocation import SortedIds, sign_delta, sign_snapshot
from verifier.sandbox import Sandbox


@pytest.fixture(scope="module")
def sb() -> Sandbox:
    return Sandbox.create(seed="revocation")


def sb_now(revset: RevocationSet) -> float:
    return 1_780_000_000.0  # the sandboxes' epoch: every sandbox key is valid then


def _reason(revset: RevocationSet, raw: bytes) -> Reason:
    with pytest.raises(DocumentRefused) as info:
        revset.apply(raw, now=sb_now(revset))
    return info.value.reason


def test_sorted_ids_agree_with_a_python_set() -> None:
    rng = random.Random(5)
    # skewed on purpose: many ids share the first two bytes (one bucket) plus random ones
    ids = {b"\x00\x01" + rng.randbytes(14) for _ in range(3000)}
    ids |= {rng.randbytes(16) for _ in range(20000)}
    ids |= {b"\xff" * 16, b"\x00" * 16}
    sorted_ids = SortedIds.from_ids(ids)
    assert len(sorted_ids) == len(ids)
    for i in ids:
        assert i in sorted_ids
    probes = [rng.randbytes(16) for _ in range(20000)] + [
        b"\x00\x01" + rng.randbytes(14) for _ in range(2000)
    ]
    for p in probes:
        assert (p in sorted_ids) == (p in ids)
    # unaligned matches inside the blob must not count: a probe made of the tail of one id
    # and the head of the next is present in the bytes but is not an id
    blob = b"".join(sorted(ids))
    for k in range(1, 16, 3):
        straddle = blob[16 - k : 32 - k]
        assert (straddle in sorted_ids) == (straddle in ids)
    for wrong in (b"", b"x" * 15, b"x" * 17, "text", None, 5):
        assert wrong not in sorted_ids


def test_unsorted_or_duplicate_blobs_refused() -> None:
    a, b = b"\x01" * 16, b"\x02" * 16
    for blob in (b + a, a + a, a + b"\x00"):
        with pytest.raises(ValueError):
            SortedIds.from_sorted_blob(blob)
    assert len(SortedIds.from_sorted_blob(a + b)) == 2


def test_snapshot_then_deltas(sb: Sandbox) -> None:
    key = sb.revoker
    a, b, c = (os.urandom(16) for _ in range(3))
    revset = RevocationSet(sb.store)
    assert revset.apply(sign_snapshot([a, b], 5, key), now=sb.epoch) == 5
    assert a in revset and b in revset and c not in revset
    assert revset.apply(sign_delta(5, 6, key, add=[c], remove=[a]), now=sb.epoch) == 6
    assert a not in revset and b in revset and c in revset and len(revset) == 2
    assert revset.apply(sign_delta(6, 7, key, add=[a]), now=sb.epoch) == 7
    assert a in revset
    odds: list[object] = [[], {}, None, "x", bytearray(a)]
    for odd in odds:
        assert odd not in revset
    # gaps and rollbacks
    assert _reason(revset, sign_delta(8, 9, key, add=[c])) == Reason.VERSION_GAP
    assert _reason(revset, sign_delta(5, 6, key, add=[c])) == Reason.ROLLBACK
    assert _reason(revset, sign_snapshot([], 7, key)) == Reason.ROLLBACK
    # a newer snapshot replaces everything, deltas included
    assert revset.apply(sign_snapshot([b], 20, key), now=sb.epoch) == 20
    assert a not in revset and c not in revset and b in revset and len(revset) == 1


def test_revocations_signed_by_root_or_revoker_only(sb: Sandbox) -> None:
    revset = RevocationSet(sb.store)
    assert revset.apply(sign_snapshot([os.urandom(16)], 1, sb.root), now=None) == 1
    assert _reason(revset, sign_snapshot([], 2, sb.central)) == Reason.KEY_OUT_OF_SCOPE
    assert _reason(revset, sign_snapshot([], 2, sb.issuers["es256"])) == Reason.UNKNOWN_KEY
    beacon = sb.sign_document("time_beacon", {"t": 0}, 3)
    assert _reason(revset, beacon) == Reason.WRONG_KIND


@pytest.mark.parametrize(
    "body",
    [{"ids": b"\x00" * 15}, {"ids": "text"}, {"ids": (b"\x02" * 16) + (b"\x01" * 16)}, [1]],
)
def test_malformed_snapshots(sb: Sandbox, body: object) -> None:
    raw = sign_document("revocation_snapshot", body, 3, sb.revoker)
    assert _reason(RevocationSet(sb.store), raw) == Reason.MALFORMED


def test_empty_snapshot_body_means_no_ids_is_refused(sb: Sandbox) -> None:
    """``ids`` is required in a snapshot: a body without it is malformed, not 'nothing'."""
    raw = sign_document("revocation_snapshot", {}, 3, sb.revoker)
    assert _reason(RevocationSet(sb.store), raw) == Reason.MALFORMED


@pytest.mark.parametrize(
    "body",
    [
        {"base": 0, "add": b"\x00" * 3},
        {"base": "0", "add": b""},
        {"add": b""},
        {"base": 0, "remove": 5},
    ],
)
def test_malformed_deltas(sb: Sandbox, body: object) -> None:
    raw = sign_document("revocation_delta", body, 3, sb.revoker)
    assert _reason(RevocationSet(sb.store), raw) == Reason.MALFORMED


def test_many_ids_load_and_memory(sb: Sandbox) -> None:
    n = 200_000
    rng = np.random.default_rng(3)
    blob = np.unique(rng.integers(0, 256, size=(n, 16), dtype=np.uint8).view("S16")[:, 0])
    raw = sign_document("revocation_snapshot", {"ids": blob.tobytes()}, 1, sb.revoker)
    revset = RevocationSet(sb.store)
    revset.apply(raw, now=sb.epoch)
    assert len(revset) == len(blob)
    assert revset.nbytes / len(blob) < 20  # 16 bytes per id + a fixed 256 KiB index
    for i in range(0, len(blob), 997):
        assert bytes(blob[i]).ljust(16, b"\x00") in revset
