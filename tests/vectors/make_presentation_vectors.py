"""Generate the presentation test vectors in tests/vectors/presentations/.

Run from the repository root: ``.venv/bin/python tests/vectors/make_presentation_vectors.py``.
Every key comes from a fixed seed (the sandbox's ``derive_key``), so the trust bundles
never change; the holder's device key is also written as ``keys/device.pem`` (and a
second phone's as ``keys/other-device.pem``) for ``gatepass present``. One JSON file per
case::

    {"description": ..., "payload": "GPP1:..." | "GP1:...", "trust": "trust/base.json",
     "at": "2026-05-28T21:31:40Z", "policy": "required" | "preferred" | "static",
     "tolerance_s": 30, "expected": {"ok": true|false, "reason": null|"<reason>"},
     "presentation": {"step": n, "period_s": p} | null   (what an ok one proves)}

ECDSA signatures use a random nonce, so re-running changes the payloads but never the
verdicts; tests/verifier/test_presentation_vectors.py runs them through the API and
``gatepass verify``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cbor2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parent / "presentations"
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from verifier import base45, canonical, cose, envelope  # noqa: E402
from verifier import presentation as gpp  # noqa: E402
from verifier.issue import issue_permit  # noqa: E402
from verifier.keys import SigningKey  # noqa: E402
from verifier.sandbox import Sandbox, derive_key  # noqa: E402

SEED = "gatepass-presentation-vectors-v1"
T0 = 1_780_000_000  # 2026-05-28T20:26:40Z
SLOT = (T0 + 3600, T0 + 7200)
AT = SLOT[0] + 307  # inside the slot, 7 s into a 15 s step
PERIOD = gpp.DEFAULT_PERIOD_S
TOL = gpp.DEFAULT_TOLERANCE_S
SITE = "makkah-haram"


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def device(label: str) -> ec.EllipticCurvePrivateKey:
    key = derive_key(SEED, label, "ES256").private
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def point(key: ec.EllipticCurvePrivateKey, compressed: bool = True) -> bytes:
    fmt = (
        serialization.PublicFormat.CompressedPoint
        if compressed
        else serialization.PublicFormat.UncompressedPoint
    )
    return key.public_key().public_bytes(serialization.Encoding.X962, fmt)


def on_curve(x: bytes) -> bool:
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x02" + x)
    except ValueError:
        return False
    return True


def bstr(data: bytes) -> bytes:
    return canonical.dumps(data)


def proof_with(
    permit: bytes,
    key: ec.EllipticCurvePrivateKey,
    *,
    payload: bytes | None = None,
    protected: bytes = gpp.PROOF_PROTECTED,
    unprotected: bytes = b"\xa0",
    aad_of: bytes | None = None,
    signature: bytes | None = None,
    tag: bytes = b"\xd2",
    now: int = AT,
    period: int = PERIOD,
) -> bytes:
    """A proof with any part replaced, correctly signed over what it then holds."""
    payload = payload if payload is not None else canonical.dumps({1: now // period, 2: period})
    aad = hashlib.sha256(aad_of if aad_of is not None else permit).digest()
    if signature is None:
        message = cose.sig_structure(protected, payload, aad)
        signature = cose.sign(cose.ALG_ES256, key, message)
    return tag + b"\x84" + bstr(protected) + unprotected + bstr(payload) + bstr(signature)


def main() -> None:
    sb = Sandbox.create(sites=(SITE, "madinah"), seed=SEED, key_window=(T0 - 86400, T0 + 10**8))
    holder, thief = device("device"), device("other-device")
    for sub in ("trust", "keys"):
        shutil.rmtree(ROOT / sub, ignore_errors=True)
        (ROOT / sub).mkdir(parents=True)
    for old in ROOT.glob("*.json"):
        old.unlink()
    for name, key in (("device", holder), ("other-device", thief)):
        (ROOT / "keys" / f"{name}.pem").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    spec = sb.specs["es256"]

    def issue_full(**kw: Any) -> Any:
        args: dict[str, Any] = {
            "issuer": spec.issuer, "issued_at": T0, "ptype": "umrah", "site": SITE,
            "slot": SLOT, "party": 3, "gate_groups": ("north",), "initials": "AK",
            "doc_number": "P1234567", "holder_key": point(holder),
        }
        args.update(kw)
        return issue_permit(spec.key, **args)

    def issue(**kw: Any) -> str:
        return issue_full(**kw).text

    bound = issue()
    bound_cose = envelope.unwrap(bound)
    paper = issue(holder_key=None)
    revoked_permit = issue_full()
    revoked = revoked_permit.text
    (ROOT / "trust" / "base.json").write_bytes(sb.bundle().to_bytes())
    sb.revoke(revoked_permit.permit_id)
    (ROOT / "trust" / "revoked.json").write_bytes(sb.bundle().to_bytes())

    vectors: list[dict[str, Any]] = []

    def add(
        name: str,
        description: str,
        payload: str,
        expected: str | None,
        *,
        at: float = AT,
        trust: str = "base",
        policy: str = "required",
        tolerance: int = TOL,
        proves: tuple[int, int] | None = None,
    ) -> None:
        v: dict[str, Any] = {
            "description": description,
            "payload": payload,
            "trust": f"trust/{trust}.json",
            "at": iso(at),
            "policy": policy,
            "tolerance_s": tolerance,
            "expected": {"ok": expected is None, "reason": expected},
            "presentation": None
            if proves is None
            else {"step": proves[0], "period_s": proves[1]},
        }
        vectors.append(v)
        (ROOT / f"{len(vectors):02d}-{name}.json").write_text(json.dumps(v, indent=1) + "\n")

    def present(permit_cose: bytes = bound_cose, proof: bytes | None = None, **kw: Any) -> str:
        if proof is None:
            proof = proof_with(permit_cose, holder, **kw)
        return gpp.wrap(permit_cose, proof)

    step = AT // PERIOD
    start, end = step * PERIOD, (step + 1) * PERIOD

    # -- accepted -------------------------------------------------------------------------
    add("ok-presentation", "live presentation of a holder-bound permit, 15 s steps",
        present(), None, proves=(step, PERIOD))
    add("ok-period-5", "5 s steps (the shortest)", present(period=5), None,
        proves=(AT // 5, 5))
    add("ok-period-60", "60 s steps (the longest)", present(period=60), None,
        proves=(AT // 60, 60))
    add("ok-tolerance-early-edge", "gate clock exactly tolerance behind the step's start",
        present(), None, at=start - TOL, proves=(step, PERIOD))
    add("ok-tolerance-late-edge", "gate clock 1 s before step end + tolerance",
        present(), None, at=end + TOL - 1, proves=(step, PERIOD))
    add("ok-bare-preferred", "holder-bound permit shown bare at a 'preferred' gate "
        "(admitted; the gate flags it)", bound, None, policy="preferred")
    add("ok-bare-static", "holder-bound permit shown bare at a 'static' gate",
        bound, None, policy="static")
    add("ok-paper-required", "paper permit (no cnf) at a 'required' gate", paper, None)
    uncompressed = issue(holder_key=point(holder, compressed=False))
    add("ok-cnf-uncompressed", "cnf with the full 32-byte y coordinate",
        present(envelope.unwrap(uncompressed)), None, proves=(step, PERIOD))
    zlib_bound = issue(gate_groups=tuple(f"north-gate-{i}" for i in range(8)))
    assert base45.decode(zlib_bound[4:])[0] == 0x78
    add("ok-inflated-permit", "a permit issued in zlib form, presented inflated",
        present(envelope.unwrap(zlib_bound)), None, proves=(step, PERIOD))

    # -- time ------------------------------------------------------------------------------
    add("expired", "screenshot replayed: step end + tolerance reached",
        present(), "presentation_expired", at=end + TOL)
    add("expired-60s", "the same code 60 s later", present(), "presentation_expired",
        at=AT + 60)
    add("in-future", "phone clock ahead: step start - tolerance - 1",
        present(), "presentation_in_future", at=start - TOL - 1)
    add("expired-no-tolerance", "tolerance 0 at the step's end", present(),
        "presentation_expired", at=end, tolerance=0)

    # -- policy and binding ----------------------------------------------------------------
    add("bare-required", "holder-bound permit shown bare (a screenshot of the permit)",
        bound, "presentation_required")
    add("paper-presented", "a presentation of a permit without cnf",
        present(envelope.unwrap(paper)), "bad_presentation")
    add("wrong-device", "proof signed by another phone's key",
        present(proof=proof_with(bound_cose, thief)), "bad_presentation")
    other = envelope.unwrap(issue())
    add("proof-of-other-permit", "a valid proof for another permit of the same phone",
        present(proof=proof_with(bound_cose, holder, aad_of=other)), "bad_presentation")

    # -- proof mutations -------------------------------------------------------------------
    add("proof-alg-eddsa", "proof protected header {1: -8}",
        present(proof=proof_with(bound_cose, holder, protected=canonical.dumps({1: -8}))),
        "bad_presentation")
    add("proof-header-kid", "proof protected header with a kid",
        present(proof=proof_with(bound_cose, holder,
                                 protected=canonical.dumps({1: -7, 4: b"\x01\x02"}))),
        "bad_presentation")
    add("proof-unprotected", "content in the proof's unprotected header",
        present(proof=proof_with(bound_cose, holder, unprotected=canonical.dumps({4: b"x"}))),
        "bad_presentation")
    add("proof-untagged", "proof without tag 18",
        present(proof=proof_with(bound_cose, holder, tag=b"")), "bad_presentation")
    for name, payload in (
        ("period-4", canonical.dumps({1: step, 2: 4})),
        ("period-61", canonical.dumps({1: step, 2: 61})),
        ("extra-key", canonical.dumps({1: step, 2: PERIOD, 3: 0})),
        ("missing-period", canonical.dumps({1: step})),
        ("negative-step", canonical.dumps({1: -1, 2: PERIOD})),
        ("text-step", canonical.dumps({1: str(step), 2: PERIOD})),
        ("non-canonical", b"\xa2\x01\x1b" + step.to_bytes(8, "big") + b"\x02\x0f"),
        ("not-a-map", canonical.dumps([step, PERIOD])),
    ):
        add(f"proof-payload-{name}", f"proof payload {name} (correctly signed)",
            present(proof=proof_with(bound_cose, holder, payload=payload)), "bad_presentation")
    good = proof_with(bound_cose, holder)
    flipped = good[:-1] + bytes((good[-1] ^ 1,))
    add("proof-signature-flipped", "one bit of the proof signature flipped",
        present(proof=flipped), "bad_presentation")
    add("proof-signature-short", "63-byte proof signature",
        present(proof=proof_with(bound_cose, holder, signature=good[-64:-1])),
        "bad_presentation")

    # -- envelope --------------------------------------------------------------------------
    body = b"\x82" + bstr(bound_cose) + bstr(good)
    add("outer-three-items", "presentation array of 3",
        gpp.PREFIX + base45.encode(b"\x83" + body[1:] + b"\x40"), "bad_presentation")
    add("outer-trailing-byte", "a byte after the presentation",
        gpp.PREFIX + base45.encode(body + b"\x00"), "bad_presentation")
    add("outer-indefinite", "indefinite-length array",
        gpp.PREFIX + base45.encode(b"\x9f" + body[1:] + b"\xff"), "bad_presentation")
    add("outer-long-length", "proof length in a non-shortest head",
        gpp.PREFIX + base45.encode(b"\x82" + bstr(bound_cose) + b"\x59\x00"
                                   + bytes((len(good),)) + good), "bad_presentation")
    add("outer-map", "a map instead of the array",
        gpp.PREFIX + base45.encode(cbor2.dumps({1: bound_cose, 2: good})), "bad_presentation")
    add("permit-zlib", "the embedded permit in zlib form",
        present(base45.decode(zlib_bound[4:]), proof=good), "bad_cose")
    big = b"\xd2" + b"\x00" * 1024
    add("permit-too-large", "embedded permit above 1024 bytes",
        gpp.PREFIX + base45.encode(b"\x82" + bstr(big) + bstr(good)), "too_large")
    add("proof-too-large", "proof above 256 bytes",
        gpp.PREFIX + base45.encode(b"\x82" + bstr(bound_cose) + bstr(good + b"\x00" * 200)),
        "too_large")
    add("text-too-large", "text above 1600 characters", gpp.PREFIX + "0" * 1600, "too_large")
    add("bad-base45", "a character outside Base45", present()[:-3] + "abc", "bad_encoding")
    add("other-version", "prefix GPP2:", "GPP2:" + present()[5:], "unsupported_version")
    add("empty", "prefix only", gpp.PREFIX, "bad_presentation")

    # -- the embedded permit's own checks come first ---------------------------------------
    revoked_cose = envelope.unwrap(revoked)
    add("revoked-permit", "a valid presentation of a revoked permit",
        present(revoked_cose), "revoked", trust="revoked")
    add("permit-slot-over", "a valid presentation after the permit's slot",
        present(now=SLOT[1] + 10), "expired", at=SLOT[1] + 10)
    tampered = bound_cose[:-1] + bytes((bound_cose[-1] ^ 1,))
    add("permit-bad-signature", "the embedded permit's signature broken",
        present(tampered), "bad_signature")
    stranger = SigningKey.generate("ES256")
    add("permit-unknown-key", "the embedded permit signed by an unknown key",
        present(envelope.unwrap(issue_permit(
            stranger, issuer=spec.issuer, issued_at=T0, ptype="umrah", site=SITE, slot=SLOT,
            holder_key=point(holder)).text)), "unknown_key")

    # -- cnf claim rules (permits signed by the trusted issuer over bad cnf values) --------
    claims = cbor2.loads(cose.split_sign1_strict(bound_cose)[1])
    x = claims[8][1][-2]

    def with_cnf(cnf: Any, raw: bytes | None = None) -> bytes:
        c = dict(claims)
        c[8] = cnf
        payload = raw if raw is not None else canonical.dumps(c)
        return spec.key.sign1(payload)

    off_curve = next(c for c in (i.to_bytes(32, "big") for i in range(1, 100)) if not on_curve(c))
    for name, cnf in (
        ("not-on-curve", {1: {1: 2, -1: 1, -2: off_curve, -3: True}}),
        ("okp-key", {1: {1: 1, -1: 6, -2: x}}),
        ("p384-curve", {1: {1: 2, -1: 2, -2: x, -3: True}}),
        ("short-x", {1: {1: 2, -1: 1, -2: x[:31], -3: True}}),
        ("kid-only", {3: b"\x01"}),
        ("y-int", {1: {1: 2, -1: 1, -2: x, -3: 1}}),
    ):
        add(f"cnf-{name}", f"cnf claim: {name}", present(with_cnf(cnf)), "bad_claims")
    # The COSE_Key's labels out of deterministic order: the encoding rule comes first.
    c = dict(claims)
    key_pairs = [(-1, 1), (1, 2), (-2, x), (-3, True)]
    inner = bytes((0xA4,)) + b"".join(cbor2.dumps(k) + cbor2.dumps(v) for k, v in key_pairs)
    pairs = sorted((canonical.dumps(k), canonical.dumps(v)) for k, v in c.items() if k != 8)
    pairs.append((canonical.dumps(8), b"\xa1\x01" + inner))
    pairs.sort()
    raw_claims = bytes((0xA0 | len(pairs),)) + b"".join(k + v for k, v in pairs)
    add("cnf-key-order", "cnf COSE_Key labels not in deterministic order",
        present(with_cnf(None, raw=raw_claims)), "non_canonical")
    # cnf = {true: COSE_Key}: true encodes in one byte like 1 (and equals 1 in Python).
    bound_payload = cose.split_sign1_strict(bound_cose)[1]
    at = bound_payload.index(bytes.fromhex("08a101a40102"))
    true_label = bound_payload[:at] + bytes.fromhex("08a1f5a40102") + bound_payload[at + 6 :]
    add("cnf-label-true", "cnf labelled true instead of 1",
        present(with_cnf(None, raw=true_label)), "bad_claims")
    print(f"{len(vectors)} vectors in {ROOT}")


if __name__ == "__main__":
    main()
