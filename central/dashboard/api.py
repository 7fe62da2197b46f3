"""The JSON the dashboard and operators read: exact counts against capacity, gates, trips."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from central.config import SiteConfig
from central.store.base import Store

MAX_LISTED = 200


def build_summary(store: Store, sites: Sequence[SiteConfig], now: float) -> dict[str, Any]:
    """One consistent-enough snapshot for ``GET /api/summary`` (each list is exact)."""
    counts = store.counts()
    configured = {s.id: s for s in sites}
    per_site: dict[str, dict[str, Any]] = {}
    slots: dict[tuple[str, int | None], dict[str, int]] = {}
    types: dict[tuple[str, str | None], int] = {}
    trips: dict[tuple[str, str], dict[str, Any]] = {}
    per_gate_admitted: dict[str, int] = {}
    totals = {"events": 0, "admits": 0, "admitted": 0}
    for r in counts:
        totals["events"] += r.events
        totals["admits"] += r.admits
        totals["admitted"] += r.admitted
        site = per_site.setdefault(r.site, {"events": 0, "admits": 0, "admitted": 0})
        site["events"] += r.events
        site["admits"] += r.admits
        site["admitted"] += r.admitted
        cell = slots.setdefault((r.site, r.slot), {"events": 0, "admitted": 0})
        cell["events"] += r.events
        cell["admitted"] += r.admitted
        types[(r.site, r.ptype)] = types.get((r.site, r.ptype), 0) + r.admitted
        per_gate_admitted[r.gate] = per_gate_admitted.get(r.gate, 0) + r.admitted
        if r.trip is not None:
            trip = trips.setdefault(
                (r.site, r.trip),
                {"site": r.site, "trip": r.trip, "gates": set(), "admits": 0, "admitted": 0,
                 "slot": r.slot},
            )
            trip["gates"].add(r.gate)
            trip["admits"] += r.admits
            trip["admitted"] += r.admitted
    site_ids = sorted(set(configured) | set(per_site))
    out_sites = []
    for sid in site_ids:
        cfg = configured.get(sid)
        seen = per_site.get(sid, {"events": 0, "admits": 0, "admitted": 0})
        out_sites.append({
            "site": sid,
            "name": (cfg.name if cfg else "") or sid,
            "configured": cfg is not None,
            "capacity_per_slot": cfg.capacity_per_slot if cfg else None,
            **seen,
            "slots": [
                {
                    "slot": slot,
                    "events": v["events"],
                    "admitted": v["admitted"],
                    "capacity": cfg.capacity(slot) if cfg else None,
                }
                for (s, slot), v in sorted(
                    slots.items(), key=lambda kv: (kv[0][0], -1 if kv[0][1] is None else kv[0][1])
                )
                if s == sid
            ],
        })
    gates = []
    for g in store.gates():
        h = g.health
        gates.append({
            "gate": g.gate,
            "site": g.site,
            "state": g.state or "unknown",
            "state_t": g.state_t,
            "offline_since": g.offline_since,
            "backlog": h.get("backlog"),
            "clock": h.get("clock"),
            "last_verdict_t": h.get("last_verdict_t"),
            "fps": h.get("fps"),
            "health_t": g.health_t,
            "last_seen": g.last_seen,
            "contiguous_seq": g.contiguous_seq,
            "stored": g.stored,
            "admitted": per_gate_admitted.get(g.gate, 0),
        })
    conflicts = store.conflicts(limit=MAX_LISTED)
    docs = store.documents()
    return {
        "t": now,
        "totals": totals,
        "sites": out_sites,
        "types": [
            {"site": s, "ptype": p, "admitted": n} for (s, p), n in sorted(
                types.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))
        ],
        "gates": gates,
        "trips": [
            {**t, "gates": sorted(t["gates"])}
            for _, t in sorted(trips.items())
        ],
        "conflicts": [asdict(c) for c in conflicts],
        "conflict_count": store.conflict_count(),
        "documents": [asdict(d) for d in docs],
        "anomalies": {
            "count": store.anomaly_count(),
            "recent": [asdict(a) for a in store.anomalies(limit=20)],
        },
        # Two devices speaking as one gate: each open alarm holds that gate's acks back.
        "seq_alarms": {
            "open": store.seq_alarm_count(),
            "recent": [asdict(a) for a in store.seq_alarms(limit=20)],
        },
    }
