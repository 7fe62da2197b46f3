"""``gatepass bench presentation``: a live presentation against the static permit it carries.

Prints one JSON object:

* ``sizes``: bytes and characters and the QR version (segno, error correction M,
  alphanumeric) of a typical static permit, the same permit holder-bound (cnf), and
  its presentation (``GPP1:``), with the versions' capacities;
* ``scene``: the scene simulator's read rate ("simulated presentations read within 3
  frames", the measure of ``gatepass bench decode``) for static permits and for
  presentations of the same permits, per impairment and overall, with the default
  decoder, the same seed and the same frames for both; ``read_rate_ratio`` is
  presentation / static;
* ``verify``: full verifications per second of a presentation (permit checks, then the
  proof; revocation set of ``--revocations`` ids, slot window) against a baseline of two
  raw ES256 verifications of the same two Sig_structures (what a presentation must do
  at least), interleaved rounds timed with the thread CPU clock, medians; plus full
  verifications of the static permit against one raw verification (``static_ratio``,
  the measure of ``gatepass bench verify``) in the same rounds. Goal: ratio >= 0.75.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from typing import Any

#: Alphanumeric capacity of QR versions at error correction M (ISO/IEC 18004 table 7).
_ALNUM_M = {9: 262, 10: 311, 11: 366, 12: 419, 13: 483, 14: 528, 15: 600, 16: 656}


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "presentation", help="presentation (GPP1:) size, read rate and verify speed vs static",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object (default)")
    parser.add_argument("--pretty", action="store_true", help="indent the JSON")
    parser.add_argument("--presentations", type=int, default=20,
                        help="simulated presentations per impairment (scene part)")
    parser.add_argument("--seed", type=int, default=1, help="scene simulator seed")
    parser.add_argument("--revocations", type=int, default=1_000_000,
                        help="revoked ids loaded for the verify part (default 1M)")
    parser.add_argument("--rounds", type=int, default=30, help="interleaved timing rounds")
    parser.add_argument("--per-round", type=int, default=200, help="verifications per round")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: scene, verify")
    parser.set_defaults(func=run)


def _per_op(fn: Any, n: int) -> float:
    start = time.thread_time_ns()
    for _ in range(n):
        fn()
    return (time.thread_time_ns() - start) / n / 1e9


def _fixtures(count: int) -> dict[str, Any]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from verifier import envelope, presentation
    from verifier.issue import issue_permit
    from verifier.sandbox import Sandbox

    sb = Sandbox.create(sites=("makkah-haram",), seed="bench-presentation")
    spec = sb.specs["es256"]
    now = sb.epoch + 600
    slot = (sb.epoch, sb.epoch + 7200)
    device = ec.generate_private_key(ec.SECP256R1())
    point = device.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    # The typical permit of docs/permit-format.md §1: party 3, one gate group, holder.
    common: dict[str, Any] = {
        "issuer": spec.issuer, "issued_at": sb.epoch, "ptype": "umrah",
        "site": "makkah-haram", "slot": slot, "party": 3, "gate_groups": ("north",),
        "initials": "AK", "doc_number": "P1234567",
    }
    static = [issue_permit(spec.key, **common).text for _ in range(count)]
    bound = [issue_permit(spec.key, holder_key=point, **common).text for _ in range(count)]
    shown = [presentation.make_presentation(envelope.unwrap(t), device, now) for t in bound]
    return {"sb": sb, "now": now, "slot": slot, "device": device, "static": static,
            "bound": bound, "shown": shown}


def sizes(fx: dict[str, Any]) -> dict[str, Any]:
    import segno

    from verifier import envelope, presentation

    def qr(text: str) -> dict[str, Any]:
        version = int(segno.make(text, error="m", micro=False, boost_error=False).version)
        return {"text_chars": len(text), "qr_version_m": version,
                "qr_capacity_chars": _ALNUM_M.get(version),
                "qr_modules": 17 + 4 * version}

    static, bound, shown = fx["static"][0], fx["bound"][0], fx["shown"][0]
    permit_cose, proof = presentation.split(shown)
    return {
        "static_permit": {"cose_bytes": len(envelope.unwrap(static)), **qr(static)},
        "holder_bound_permit": {"cose_bytes": len(envelope.unwrap(bound)), **qr(bound)},
        "presentation": {"permit_bytes": len(permit_cose), "proof_bytes": len(proof),
                         "cbor_bytes": len(permit_cose) + len(proof) + 5, **qr(shown)},
    }


def scene(fx: dict[str, Any], presentations: int, seed: int) -> dict[str, Any]:
    from gatepass.bench.decode import scene_rates

    out: dict[str, Any] = {}
    for name in ("static", "shown"):
        payloads = [t.encode() for t in fx[name]]
        out["presentation" if name == "shown" else "static"] = scene_rates(
            payloads, presentations=presentations, seed=seed, names=("default",)
        )["default"]
    static_all = out["static"]["all"]["rate"]
    out["within_frames"] = 3
    out["presentations_per_impairment"] = presentations
    out["seed"] = seed
    out["read_rate_ratio"] = (
        round(out["presentation"]["all"]["rate"] / static_all, 3) if static_all else None
    )
    return out


def verify_speed(fx: dict[str, Any], revocations: int, rounds: int, per_round: int
                 ) -> dict[str, Any]:
    import numpy as np
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from verifier import SlotWindow, cose, presentation, verify_at
    from verifier.documents import KIND_REVOCATION_SNAPSHOT, sign_document
    from verifier.revocation import RevocationSet
    from verifier.verify import raw_to_der

    sb, now = fx["sb"], fx["now"]
    # Random revoked ids as one sorted blob, signed as a snapshot (as bench verify does).
    rng = np.random.default_rng(7)
    ids = np.sort(rng.integers(0, 256, size=(revocations, 16), dtype=np.uint8).view("S16")[:, 0])
    snapshot = sign_document(KIND_REVOCATION_SNAPSHOT, {"ids": np.unique(ids).tobytes()}, 1,
                             sb.revoker)
    revset = RevocationSet(sb.store)
    revset.apply(snapshot, now=now)
    window = SlotWindow(early_s=900, late_s=1800)
    store = sb.store
    shown, static = fx["shown"][0], fx["static"][0]
    permit_cose, proof = presentation.split(shown)
    issuer_public: Any = sb.specs["es256"].key.private.public_key()
    _, _, permit_sig, permit_msg = cose.split_sign1_for_verify(permit_cose)
    p_protected, p_payload, p_sig = cose.split_sign1_strict(proof)
    proof_msg = cose.sig_structure(p_protected, p_payload, hashlib.sha256(permit_cose).digest())
    device_public = fx["device"].public_key()
    der1, der2 = raw_to_der(permit_sig), raw_to_der(p_sig)
    algo = ec.ECDSA(hashes.SHA256())

    def full() -> None:
        verify_at(shown, now, trust=store, revocations=revset, window=window)

    def baseline() -> None:
        issuer_public.verify(der1, permit_msg, algo)
        device_public.verify(der2, proof_msg, algo)

    def one_raw() -> None:
        issuer_public.verify(der1, permit_msg, algo)

    def static_full() -> None:
        verify_at(static, now, trust=store, revocations=revset, window=window,
                  presentation_policy="static")

    assert verify_at(shown, now, trust=store, revocations=revset,
                     window=window).presentation is not None
    cases = {"full": full, "baseline": baseline, "static": static_full, "one": one_raw}
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(3):  # warm caches (header, identifiers, holder key)
        for fn in cases.values():
            fn()
    for _ in range(rounds):
        for name, fn in cases.items():
            times[name].append(_per_op(fn, per_round))
    med = {k: statistics.median(v) for k, v in times.items()}
    ratios = [b / f for f, b in zip(times["full"], times["baseline"], strict=True)]
    return {
        "presentation_verify_per_s": round(1 / med["full"]),
        "baseline_two_es256_verify_per_s": round(1 / med["baseline"]),
        "ratio": round(med["baseline"] / med["full"], 3),
        "ratio_rounds_min_max": [round(min(ratios), 3), round(max(ratios), 3)],
        "static_permit_verify_per_s": round(1 / med["static"]),
        "baseline_one_es256_verify_per_s": round(1 / med["one"]),
        # The static permit's own ratio in the same run (bench verify's measure): how much
        # of the presentation's gap is the permit path itself on this machine today.
        "static_ratio": round(med["one"] / med["static"], 3),
        "revocations": revocations,
        "rounds": rounds,
        "per_round": per_round,
        "clock": "thread CPU time, medians over interleaved rounds",
        "goal_ratio_ge_0_75": med["baseline"] / med["full"] >= 0.75,
    }


def presentation_cases(sb: Any, now: float, revset: Any, window: Any) -> dict[str, Any]:
    """For ``gatepass bench verify``: a full presentation verification and its baseline
    (two raw ES256 verifications of the same two Sig_structures), as timed callables."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from verifier import cose, envelope, presentation, verify_at
    from verifier.issue import issue_permit
    from verifier.verify import raw_to_der

    spec = sb.specs["es256"]
    device = ec.generate_private_key(ec.SECP256R1())
    point = device.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    slot = (int(now) - 60, int(now) + 7200)
    permit = envelope.unwrap(issue_permit(
        spec.key, issuer=spec.issuer, issued_at=int(now) - 60, ptype="umrah",
        site=next(iter(spec.sites or ("makkah-haram",))), slot=slot, party=3,
        gate_groups=("north",), initials="AK", doc_number="P1234567", holder_key=point,
    ).text)
    shown = presentation.make_presentation(permit, device, now)
    _, _, permit_sig, permit_msg = cose.split_sign1_for_verify(permit)
    protected, payload, proof_sig = cose.split_sign1_strict(presentation.split(shown)[1])
    proof_msg = cose.sig_structure(protected, payload, hashlib.sha256(permit).digest())
    issuer_public: Any = spec.key.private.public_key()
    device_public = device.public_key()
    der1, der2 = raw_to_der(permit_sig), raw_to_der(proof_sig)
    algo = ec.ECDSA(hashes.SHA256())
    store = sb.store

    def full() -> None:
        verify_at(shown, now, trust=store, revocations=revset, window=window)

    def baseline() -> None:
        issuer_public.verify(der1, permit_msg, algo)
        device_public.verify(der2, proof_msg, algo)

    return {"full_presentation": full, "raw_two_es256": baseline}


def run(args: argparse.Namespace) -> int:
    from gatepass.cli import UsageError

    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if skip - {"scene", "verify"}:
        raise UsageError(f"--skip takes scene and verify, not {', '.join(sorted(skip))}")
    if args.presentations < 1 or args.rounds < 1 or args.per_round < 1 or args.revocations < 0:
        raise UsageError("--presentations, --rounds and --per-round must be positive")
    fx = _fixtures(count=8)
    result: dict[str, Any] = {"sizes": sizes(fx)}
    if "scene" not in skip:
        result["scene"] = scene(fx, args.presentations, args.seed)
    if "verify" not in skip:
        result["verify"] = verify_speed(fx, args.revocations, args.rounds, args.per_round)
    json.dump(result, sys.stdout, indent=2 if args.pretty else None)
    sys.stdout.write("\n")
    return 0
