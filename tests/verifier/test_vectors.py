"""The published permit vectors (tests/vectors/permits/*.json) through the API and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from verifier import DocumentRefused, PermitRefused, Reason, SlotWindow, TrustBundle, verify_at
from verifier.documents import KIND_TRUST_LIST, read_document

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "permits"
FILES = sorted(VECTORS.glob("*.json"))
GATEPASS = [sys.executable, "-m", "gatepass"]


def _load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def _window(v: dict[str, Any]) -> SlotWindow | None:
    w = v.get("window")
    return None if w is None else SlotWindow(early_s=w["early_s"], late_s=w["late_s"])


def test_vectors_cover_every_reason_both_algorithms_rotation_rollback_revocation() -> None:
    vectors = [_load(p) for p in FILES]
    reasons = {v["expected"]["reason"] for v in vectors}
    reasons |= {r for v in vectors for r in v.get("apply_expected", [])}
    # Presentation reasons are covered by tests/vectors/presentations/ (their own test).
    reasons |= {r.value for r in Reason if "presentation" in r.value}
    assert {r.value for r in Reason} <= reasons, {r.value for r in Reason} - reasons
    assert any(v["expected"]["ok"] for v in vectors)
    names = " ".join(p.name for p in FILES)
    for word in ("eddsa", "es256", "rotation", "rollback", "revoked", "collide", "zlib"):
        assert word in names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_vector_through_api(path: Path) -> None:
    v = _load(path)
    bundle = TrustBundle.from_bytes((path.parent / v["trust"]).read_bytes())
    store = bundle.store()
    now = datetime.fromisoformat(v["at"].replace("Z", "+00:00")).timestamp()
    revset = bundle.revocation_set(store, now=now)
    got_apply: list[str | None] = []
    for doc in v.get("apply", []):
        raw = (path.parent / doc).read_bytes()
        try:
            kinds = (KIND_TRUST_LIST, "revocation_snapshot", "revocation_delta")
            kind = read_document(raw, kinds, store, now=now).kind
            store.apply(raw) if kind == KIND_TRUST_LIST else revset.apply(raw, now=now)
            got_apply.append(None)
        except DocumentRefused as exc:
            got_apply.append(exc.reason.value)
    assert got_apply == v.get("apply_expected", [])
    try:
        permit = verify_at(v["payload"], now, trust=store, revocations=revset, window=_window(v))
        got: dict[str, Any] = {"ok": True, "reason": None}
        assert len(permit.permit_id) == 16
    except PermitRefused as exc:
        got = {"ok": False, "reason": exc.reason.value}
    assert got == v["expected"], v["description"]


def _cli_groups() -> dict[tuple[Any, ...], list[Path]]:
    groups: dict[tuple[Any, ...], list[Path]] = defaultdict(list)
    for path in FILES:
        v = _load(path)
        w = v.get("window") or {}
        key = (v["trust"], v["at"], w.get("early_s"), w.get("late_s"), tuple(v.get("apply", [])))
        groups[key].append(path)
    return groups


GROUPS = _cli_groups()


@pytest.mark.parametrize("key", list(GROUPS), ids=lambda k: f"{Path(k[0]).stem}@{k[1]}")
def test_vectors_through_cli(key: tuple[Any, ...]) -> None:
    paths = GROUPS[key]
    vectors = [_load(p) for p in paths]
    trust, at, early, late, apply = key
    cmd = [*GATEPASS, "verify", "--trust", str(VECTORS / trust), "--at", at]
    if early is not None:
        cmd += ["--early", str(early), "--late", str(late)]
    if apply:
        for a in apply:
            cmd += ["--apply", str(VECTORS / a)]
    use_stdin = (len(vectors) > 1 and len(GROUPS) % 2 == 0) or len(vectors) > 3
    stdin = None
    if use_stdin:
        cmd.append("-")
        stdin = "".join(v["payload"] + "\n" for v in vectors)
    else:
        cmd += [v["payload"] for v in vectors]
    proc = subprocess.run(
        cmd, input=stdin, capture_output=True, text=True, timeout=60, cwd=VECTORS.parents[2]
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(lines) == len(vectors), proc.stderr
    for v, out in zip(vectors, lines, strict=True):
        assert {"ok": out["ok"], "reason": out["reason"]} == v["expected"], v["description"]
        if out["ok"]:
            assert len(bytes.fromhex(out["permit_id"])) == 16 and out["ph"]
    all_ok = all(v["expected"]["ok"] for v in vectors)
    assert proc.returncode == (0 if all_ok else 1), proc.stderr
    for v in vectors:
        for reason in v.get("apply_expected", []):
            if reason:
                assert reason in proc.stderr
