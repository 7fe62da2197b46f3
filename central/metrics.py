"""Prometheus metrics of the centre, on a registry of its own (never the global one)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from central.store.base import Store


class CentralMetrics:
    """Counters the aggregator bumps; ``registry`` is what ``/metrics`` renders."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            "gatepass_central_messages", "MQTT messages received", ["leaf"], registry=r
        )
        self.events_received = Counter(
            "gatepass_central_events_received", "events received in accepted batches",
            registry=r,
        )
        self.events_stored = Counter(
            "gatepass_central_events_stored", "events stored for the first time", registry=r
        )
        self.events_duplicate = Counter(
            "gatepass_central_events_duplicate", "redelivered events already stored", registry=r
        )
        self.refused = Counter(
            "gatepass_central_batches_refused", "messages refused whole", ["reason"], registry=r
        )
        self.anomalies = Counter(
            "gatepass_central_anomalies", "anomalies recorded", ["kind"], registry=r
        )
        self.seq_conflicts = Counter(
            "gatepass_central_seq_conflicts",
            "events whose (gate, seq) was stored with another event id: two devices, one gate",
            registry=r,
        )
        self.conflicts = Counter(
            "gatepass_central_conflicts", "admissions flagged as cross-gate conflicts", registry=r
        )
        self.acks = Counter(
            "gatepass_central_acks_published", "acknowledgements published", registry=r
        )
        self.documents = Counter(
            "gatepass_central_documents_published", "signed documents published", ["kind"],
            registry=r,
        )
        self.store_errors = Counter(
            "gatepass_central_store_errors", "store calls that failed (then retried)", registry=r
        )
        self.store_seconds = Histogram(
            "gatepass_central_store_seconds", "time to store one batch of messages", registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )
        self.queue_depth = Gauge(
            "gatepass_central_queue_messages", "messages waiting for the store", registry=r
        )
        self.connected = Gauge(
            "gatepass_central_broker_connected", "1 when connected to the broker", registry=r
        )


class StoreCollector(Collector):
    """Exact totals read from the store at scrape time (so every worker reports the truth)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def collect(self) -> Iterator[Metric]:
        admitted = GaugeMetricFamily(
            "gatepass_site_admitted", "people admitted per site (all gates)", labels=["site"]
        )
        events = GaugeMetricFamily(
            "gatepass_gate_events_stored", "distinct events stored per gate", labels=["gate"]
        )
        online = GaugeMetricFamily(
            "gatepass_gate_online", "1 if the gate's retained status is online", labels=["gate"]
        )
        per_site: dict[str, int] = {}
        per_gate: dict[str, int] = {}
        for row in self._store.counts():
            per_site[row.site] = per_site.get(row.site, 0) + row.admitted
            per_gate[row.gate] = per_gate.get(row.gate, 0) + row.events
        for site, n in sorted(per_site.items()):
            admitted.add_metric([site], n)
        for gate, n in sorted(per_gate.items()):
            events.add_metric([gate], n)
        for g in self._store.gates():
            online.add_metric([g.gate], 1.0 if g.state == "online" else 0.0)
        conflicts = GaugeMetricFamily(
            "gatepass_conflicts_open", "admissions flagged for review"
        )
        conflicts.add_metric([], self._store.conflict_count())
        alarms = GaugeMetricFamily(
            "gatepass_seq_alarms_open", "open seq alarms: two devices speak as one gate"
        )
        alarms.add_metric([], self._store.seq_alarm_count())
        yield alarms
        yield admitted
        yield events
        yield online
        yield conflicts
