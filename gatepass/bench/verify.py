"""``gatepass bench verify``: full permit verifications per second against raw ES256.

Both sides run in the same process, interleaved in short rounds and timed with the
thread's CPU clock, so a machine shared with other work slows both alike; the
report gives medians over rounds. The full path is text in, verified permit out,
with the slot window and a revocation set of ``--revocations`` ids (1 million by
default) loaded from a signed snapshot. The baseline is
``public_key.verify(der_signature, sig_structure, ECDSA(SHA256))`` on the same bytes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "verify", help="permit verification throughput vs raw ES256", description=__doc__
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object (default)")
    parser.add_argument(
        "--revocations", type=int, default=1_000_000, help="revoked ids to load (default 1M)"
    )
    parser.add_argument("--rounds", type=int, default=30, help="interleaved rounds")
    parser.add_argument("--per-round", type=int, default=300, help="verifications per round")
    parser.set_defaults(func=run)


def _per_op(fn: Any, n: int) -> float:
    start = time.thread_time_ns()
    for _ in range(n):
        fn()
    return (time.thread_time_ns() - start) / n / 1e9


def measure(revocations: int, rounds: int, per_round: int) -> dict[str, Any]:
    import os

    import numpy as np
    import segno
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    from verifier import SlotWindow, cose, envelope, verify_at
    from verifier.revocation import RevocationSet
    from verifier.sandbox import Sandbox

    sb = Sandbox.create(sites=("makkah-haram",), seed="bench")
    start = sb.epoch
    slot = (start, start + 7200)
    texts = {
        alg: sb.issue(
            ptype="umrah",
            site="makkah-haram",
            slot=slot,
            party=3,
            gate_groups=("north",),
            key=alg,
            initials="AK",
            doc_number="P1234567",
        )
        for alg in ("es256", "eddsa")
    }

    # 1M random revoked ids as one sorted blob, signed as a snapshot like central sends.
    rng = np.random.default_rng(7)
    ids = np.sort(rng.integers(0, 256, size=(revocations, 16), dtype=np.uint8).view("S16")[:, 0])
    blob = np.unique(ids).tobytes()
    from verifier.documents import KIND_REVOCATION_SNAPSHOT, sign_document

    snapshot = sign_document(KIND_REVOCATION_SNAPSHOT, {"ids": blob}, 1, sb.revoker)
    load_times = []
    revset = RevocationSet(sb.store)
    for _ in range(3):
        revset = RevocationSet(sb.store)
        t0 = time.perf_counter()
        revset.apply(snapshot, now=start)
        load_times.append(time.perf_counter() - t0)
    count = len(revset)

    import tracemalloc

    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    probe = RevocationSet(sb.store)
    probe.apply(snapshot, now=start)
    retained = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del probe
    retained_minus_doc = retained  # the snapshot document itself is freed after apply

    present = [blob[i * 16 : (i + 1) * 16] for i in range(0, count, max(1, count // 500))]
    absent = [os.urandom(16) for _ in range(len(present))]
    probes = present + absent
    lookup_rounds = []
    for _ in range(rounds):
        t0 = time.thread_time_ns()
        for _ in range(5):
            for p in probes:
                p in revset  # noqa: B015
        lookup_rounds.append((time.thread_time_ns() - t0) / (5 * len(probes)) / 1e3)
    assert all(p in revset for p in present)

    window = SlotWindow(early_s=600, late_s=600)
    now = start + 60
    store = sb.store

    def full(text: str) -> Any:
        return lambda: verify_at(text, now, trust=store, revocations=revset, window=window)

    def raw_verify(text: str, key: Any) -> Any:
        unverified = cose.parse_sign1_strict(envelope.unwrap(text))
        message = unverified.to_be_signed()
        sig = unverified.signature
        if unverified.alg == cose.ALG_ES256:
            der = encode_dss_signature(
                int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
            )
            algo = ec.ECDSA(hashes.SHA256())
            return lambda: key.verify(der, message, algo)
        return lambda: key.verify(sig, message)

    cases = {
        "full_es256": full(texts["es256"]),
        "raw_es256": raw_verify(texts["es256"], sb.issuers["es256"].public()),
        "full_eddsa": full(texts["eddsa"]),
        "raw_eddsa": raw_verify(texts["eddsa"], sb.issuers["eddsa"].public()),
    }
    from gatepass.bench.presentation import presentation_cases  # holder-bound GPP1: codes

    cases.update(presentation_cases(sb, now, revset, window))
    for fn in cases.values():
        fn()  # warm up (and fail loudly here if anything does not verify)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    ratios = []
    for _ in range(rounds):
        for name, fn in cases.items():
            samples[name].append(_per_op(fn, per_round))
        ratios.append(samples["raw_es256"][-1] / samples["full_es256"][-1])
    med = {name: statistics.median(v) for name, v in samples.items()}
    text = texts["es256"]
    qr = segno.make(text, error="m", micro=False)
    return {
        "verify_per_s": round(1 / med["full_es256"]),
        "baseline_es256_verify_per_s": round(1 / med["raw_es256"]),
        "ratio": round(med["raw_es256"] / med["full_es256"], 3),
        "revocation_lookup_us": round(statistics.median(lookup_rounds), 3),
        "revocation_bytes_per_entry": round(retained_minus_doc / count, 2),
        "revocation_load_s": round(statistics.median(load_times), 3),
        "presentation_verify_per_s": round(1 / med["full_presentation"]),
        "baseline_two_es256_verify_per_s": round(1 / med["raw_two_es256"]),
        "presentation_ratio": round(med["raw_two_es256"] / med["full_presentation"], 3),
        # context for the numbers above
        "ratio_per_round_median": round(statistics.median(ratios), 3),
        "ratio_per_round_min_max": [round(min(ratios), 3), round(max(ratios), 3)],
        "verify_eddsa_per_s": round(1 / med["full_eddsa"]),
        "baseline_eddsa_verify_per_s": round(1 / med["raw_eddsa"]),
        "revocations": count,
        "revocation_lookup_us_max_round": round(max(lookup_rounds), 3),
        "payload_chars": len(text),
        "qr_version_m": qr.version,
        "rounds": rounds,
        "per_round": per_round,
        "timer": "thread CPU time, medians over interleaved rounds",
    }


def run(args: argparse.Namespace) -> int:
    if args.revocations < 1 or args.rounds < 1 or args.per_round < 1:
        from gatepass.cli import UsageError

        raise UsageError("--revocations, --rounds and --per-round must be positive")
    result = measure(args.revocations, args.rounds, args.per_round)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0
