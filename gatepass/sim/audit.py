"""Compare the gates' ledgers with the central store, event by event ``(gate, seq, eid)``.

Nothing is computed on the side: admissions come from the ledgers' event rows and from
the central store's counts; ``lost`` and ``counted_twice`` come from matching the two.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class AuditResult:
    """What the gates recorded against what the centre counted."""

    gate_admissions: int  # people admitted, summed over the gates' ledgers
    central_admissions: int  # people admitted, summed over the central counts
    lost: int  # admission events in a ledger that the centre does not hold
    counted_twice: int  # admission events the centre counts more than once
    conflicts: int  # the central conflict count (same permit admitted at two gates)
    events: int  # events in the ledgers (scans, refusals, trips...)
    central_events: int  # distinct events the centre stored
    events_lost: int  # any ledger event (not only admissions) missing centrally
    mismatched: int  # central events whose eid differs from the ledger's at that seq
    anomalies: int  # what the centre refused or kept for review

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ledger_rows(path: Path) -> list[tuple[int, str, int]]:
    """``(seq, eid, people admitted)`` of every event in a gate ledger (read-only)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [
            (int(seq), str(eid), int(party) if verdict == "admit" else 0)
            for seq, eid, verdict, party in conn.execute(
                "SELECT seq, eid, verdict, party FROM events ORDER BY seq")
        ]
    finally:
        conn.close()


def audit(ledgers: Iterable[tuple[str, Path]], store_url: str) -> AuditResult:
    """Audit ``(gate id, ledger path)`` pairs against the central store at ``store_url``."""
    from central.store import open_store

    gate_adm = events = lost = events_lost = mismatched = twice = 0
    with open_store(store_url) as store:
        counts = store.counts()
        central_adm = sum(r.admitted for r in counts)
        admits_counted: Counter[str] = Counter()
        for r in counts:
            admits_counted[r.gate] += r.admits
        for gate, path in ledgers:
            rows = ledger_rows(path)
            stored = store.stored_keys(gate)
            by_seq = dict(stored)
            eid_uses = Counter(eid for _, eid in stored)
            found_admissions = 0
            for seq, eid, people in rows:
                events += 1
                gate_adm += people
                central_eid = by_seq.get(seq)
                if central_eid is None:
                    events_lost += 1
                    lost += people > 0
                    continue
                if central_eid != eid:
                    mismatched += 1
                    lost += people > 0
                    continue
                if people > 0:
                    found_admissions += 1
                    # The same event stored under two keys is counted twice.
                    twice += eid_uses[eid] - 1
            # The centre's admitting-event count for this gate beyond what the ledger holds.
            twice += max(0, admits_counted[gate] - found_admissions)
        return AuditResult(
            gate_admissions=gate_adm, central_admissions=central_adm, lost=lost,
            counted_twice=twice, conflicts=len(store.conflicts(limit=10**9)), events=events,
            central_events=store.event_count(), events_lost=events_lost, mismatched=mismatched,
            anomalies=store.anomaly_count(),
        )
