"""The document rules every holder shares: one version rule per line, signer validity.

Also the gate's path (``sync.downlink.Downlink``, what a gate runs on every downlink
message): a retired signer's document and an old version are refused there too.
"""

from __future__ import annotations

import os

import pytest

from sync import topics
from sync.downlink import Downlink
from verifier import DocumentRefused, Reason, RevocationSet, documents
from verifier.documents import check_newer, read_document, version_line
from verifier.revocation import sign_delta, sign_snapshot
from verifier.sandbox import Sandbox

T = 1_780_000_000


def _doc(sb: Sandbox, raw: bytes) -> documents.Document:
    kinds = ("revocation_snapshot", "revocation_delta", "time_beacon", "gate_config",
             "used_permits", "trust_list")
    return read_document(raw, kinds, sb.store, now=T)


def _refused(fn: object, *args: object, **kw: object) -> Reason:
    with pytest.raises(DocumentRefused) as info:
        fn(*args, **kw)  # type: ignore[operator]
    return info.value.reason


def test_version_lines() -> None:
    assert version_line("revocation_snapshot") == version_line("revocation_delta")
    assert version_line("used_permits") is None
    for kind in ("trust_list", "time_beacon", "gate_config", "gate_registry"):
        assert version_line(kind) == kind


def test_check_newer_for_snapshots_deltas_and_other_kinds() -> None:
    sb = Sandbox.create(seed="rules")
    snap3 = _doc(sb, sign_snapshot([], 3, sb.revoker))
    check_newer(snap3, 0)
    check_newer(snap3, 2)
    assert _refused(check_newer, snap3, 3) == Reason.ROLLBACK  # the same version again
    assert _refused(check_newer, snap3, 7) == Reason.ROLLBACK
    delta = _doc(sb, sign_delta(3, 5, sb.revoker, add=[os.urandom(16)]))  # may skip numbers
    check_newer(delta, 3)
    assert _refused(check_newer, delta, 2) == Reason.VERSION_GAP
    assert _refused(check_newer, delta, 4) == Reason.VERSION_GAP
    assert _refused(check_newer, delta, 5) == Reason.ROLLBACK
    backwards = _doc(sb, sign_delta(6, 5, sb.revoker))
    assert _refused(check_newer, backwards, 6) == Reason.MALFORMED
    for kind in ("time_beacon", "gate_config"):
        doc = _doc(sb, sb.sign_document(kind, {"t": 1}, 10, issued_at=T))
        check_newer(doc, 9)
        assert _refused(check_newer, doc, 10) == Reason.ROLLBACK


def test_versions_start_at_one() -> None:
    sb = Sandbox.create(seed="rules-v0")
    with pytest.raises(ValueError, match=">= 1"):
        documents.sign_document("time_beacon", {"t": 1}, 0, sb.central)
    from verifier import canonical

    raw = sb.central.sign1(canonical.dumps({"kind": "time_beacon", "v": 0, "body": {}}))
    assert _refused(read_document, raw, "time_beacon", sb.store, now=T) == Reason.MALFORMED


@pytest.mark.parametrize(
    ("window", "now", "iat", "reason"),
    [
        ({}, T, None, None),
        ({"verify_until": T - 1}, T, T - 10, Reason.KEY_NOT_VALID),  # retired
        ({"verify_until": T}, T, T - 10, None),  # the last instant
        ({"not_before": T + 1}, T, None, Reason.KEY_NOT_VALID),  # not valid yet
        ({"not_after": T - 100}, T, T - 200, None),  # signed before it stopped signing
        ({"not_after": T - 100}, T, T - 50, Reason.KEY_NOT_VALID),  # signed after
        ({"not_after": T - 100}, T, None, Reason.KEY_NOT_VALID),  # no iat to show when
        ({"not_before": T - 100}, T, T - 200, Reason.KEY_NOT_VALID),  # iat before nbf
    ],
)
def test_signer_validity_window(
    window: dict[str, int], now: int, iat: int | None, reason: Reason | None
) -> None:
    sb = Sandbox.create(seed="rules-window")
    for name, value in window.items():
        setattr(sb.specs["central"], name, value)
    sb.publish_trust_list()
    raw = sb.sign_document("gate_config", {"gate": "g1"}, 1, issued_at=iat)
    if reason is None:
        assert read_document(raw, "gate_config", sb.store, now=now).version == 1
    else:
        assert _refused(read_document, raw, "gate_config", sb.store, now=now) == reason


def test_without_a_time_only_the_root_signs() -> None:
    sb = Sandbox.create(seed="rules-now")
    by_central = sb.sign_document("gate_config", {}, 1, issued_at=T)
    assert _refused(read_document, by_central, "gate_config", sb.store, now=None) == (
        Reason.KEY_NOT_VALID
    )
    by_root = sb.sign_document("gate_config", {}, 1, signer="root")
    assert read_document(by_root, "gate_config", sb.store, now=None).version == 1


def test_retired_revocation_key_cannot_unrevoke() -> None:
    sb = Sandbox.create(seed="rules-unrevoke")
    pid = os.urandom(16)
    revset = RevocationSet(sb.store)
    revset.apply(sign_snapshot([pid], 1, sb.revoker), now=T)
    sb.specs["revoker"].verify_until = T + 10
    sb.publish_trust_list()
    unrevoke = sign_delta(1, 2, sb.revoker, remove=[pid])
    assert _refused(revset.apply, unrevoke, now=T + 11) == Reason.KEY_NOT_VALID
    assert pid in revset and revset.version == 1
    with pytest.raises(ValueError, match="both added and removed"):
        sign_delta(1, 2, sb.revoker, add=[pid], remove=[pid])  # see vector document-refusals


def test_gate_downlink_refuses_retired_signers_and_old_versions() -> None:
    sb = Sandbox.create(seed="rules-gate")
    store = sb.new_store()
    revset = RevocationSet(store)
    beacons: list[int] = []
    configs: list[int] = []
    now = [float(T)]
    dl = Downlink(
        gate="g1", site="s1", trust=store, clock=lambda: now[0],
        on_revocations=lambda item: revset.apply(item.raw, now=now[0]),
        on_time_beacon=lambda item: beacons.append(item.version),
        on_config=lambda item: configs.append(item.version),
    )
    pid = os.urandom(16)
    dl.handle(topics.REVOCATION_SNAPSHOT, sign_snapshot([pid], 2, sb.revoker), True)
    dl.handle(topics.REVOCATION_SNAPSHOT, sign_snapshot([], 1, sb.revoker), False)  # older
    assert pid in revset and dl.stats.refused["revocation_snapshot"] == 1
    dl.handle(topics.TIME, sb.sign_document("time_beacon", {"t": T}, 5, issued_at=T), False)
    dl.handle(topics.TIME, sb.sign_document("time_beacon", {"t": T}, 4, issued_at=T), False)
    assert beacons == [5] and dl.stats.refused["time_beacon"] == 1
    cfg = sb.sign_document("gate_config", {"gate": "g1"}, 3, issued_at=T)
    dl.handle(topics.config("g1"), cfg, True)
    dl.handle(topics.config("g1"), cfg, True)  # the broker's retained replay: stale
    assert configs == [3] and dl.stats.stale["gate_config"] == 1
    # central's key retires; a later config and beacon it signs are refused at the gate
    sb.specs["central"].verify_until = T + 100
    dl.handle(topics.TRUST, sb.publish_trust_list(), True)
    now[0] = T + 101
    dl.handle(topics.config("g1"), sb.sign_document("gate_config", {"gate": "g1"}, 4,
                                                    issued_at=T + 101), False)
    assert configs == [3] and "retired" in (dl.stats.last_refusal or "")
