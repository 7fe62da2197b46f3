"""``gatepass central serve``: one process running an aggregator worker and the dashboard.

:class:`CentralApp` wires the parts from a :class:`~central.config.CentralConfig`;
``gatepass central worker`` runs the same without HTTP (more workers, one dashboard).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

from central.aggregator import Aggregator
from central.config import CentralConfig
from central.downlink import DownlinkSigner, Given, load_signing_key
from central.errors import CentralConfigError
from central.metrics import CentralMetrics, StoreCollector
from central.store import Store, open_store
from verifier import documents
from verifier.errors import GatepassError

if TYPE_CHECKING:
    from central.dashboard.server import DashboardServer
    from verifier.registry import GateRegistry
    from verifier.trust import TrustStore

log = logging.getLogger(__name__)


def load_trust(config: CentralConfig) -> TrustStore | None:
    """The centre's trust store from the configured bundle, or None without one."""
    if config.trust is None:
        return None
    from verifier.trust import TrustBundle

    path = config.trust.bundle_file
    try:
        return TrustBundle.from_bytes(path.read_bytes()).store()
    except OSError as exc:
        raise CentralConfigError(f"cannot read trust bundle {path}: {exc.strerror}") from None
    except GatepassError as exc:
        raise CentralConfigError(f"trust bundle {path} is unusable: {exc}") from None


def load_registry(
    config: CentralConfig, trust: TrustStore | None, now: float
) -> GateRegistry | None:
    """The configured gate registry, verified against the trust root; None without one."""
    if config.registry is None or not config.registry.check or config.registry.file is None:
        log.warning("[registry] check = false: gate identities are NOT checked; any gate with"
                    " broker credentials may claim any site, group or seq (tests and demos"
                    " only)")
        return None
    from verifier.registry import open_registry

    if trust is None:
        raise CentralConfigError("[registry] needs [trust] to verify it")
    path = config.registry.file
    try:
        return open_registry(path.read_bytes(), trust, now=now)
    except OSError as exc:
        raise CentralConfigError(f"cannot read gate registry {path}: {exc.strerror}") from None
    except GatepassError as exc:
        raise CentralConfigError(f"gate registry {path} is unusable: {exc}") from None


def load_signer(config: CentralConfig) -> DownlinkSigner | None:
    if config.signing is None:
        return None
    return DownlinkSigner(key=load_signing_key(config.signing.key_file, config.signing.kid))


class CentralApp:
    """Store + aggregator worker (+ dashboard when ``http`` is True). A context manager."""

    def __init__(
        self,
        config: CentralConfig,
        *,
        http: bool = True,
        client_id: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.clock = clock
        self.trust = load_trust(config)
        self.signer = load_signer(config)
        self.metrics = CentralMetrics()
        self.store: Store = open_store(config.store.url)
        self.dashboard: DashboardServer | None = None
        try:
            self._adopt_stored_trust_list()
            registry = load_registry(config, self.trust, clock())
            self.metrics.registry.register(StoreCollector(self.store))
            agg = config.aggregator
            self.aggregator = Aggregator(
                store=self.store,
                broker=config.broker,
                client_id=client_id or agg.client_id,
                signer=self.signer,
                trust=self.trust,
                metrics=self.metrics,
                clock=clock,
                max_batch_events=agg.max_batch_events,
                queue_messages=agg.queue_messages,
                time_beacon_period_s=agg.time_beacon_period_s,
                used_stream=agg.used_stream,
                shared_subscription=agg.shared_subscription,
                registry=registry,
            )
            if http:
                from central.dashboard.server import DashboardServer

                host, port = config.http.address
                self.dashboard = DashboardServer(
                    store=self.store, sites=config.sites, host=host, port=port,
                    registry=self.metrics.registry, give=self.give,
                    max_body_bytes=config.http.max_body_bytes, poll_ms=config.http.poll_ms,
                    clock=clock,
                )
        except BaseException:
            self.store.close()
            raise

    def _adopt_stored_trust_list(self) -> None:
        # A trust list given earlier may name revocation keys the bundle predates.
        raw = self.store.latest_document(documents.KIND_TRUST_LIST)
        if raw is not None and self.trust is not None:
            try:
                self.trust.apply(raw)
            except GatepassError as exc:
                log.warning("stored trust list not adopted: %s", exc)

    def give(self, raw: bytes) -> Given:
        """Relay a signed trust list or revocation document (checked first)."""
        return self.aggregator.give(raw)

    def start(self) -> CentralApp:
        self.aggregator.start()
        if self.dashboard is not None:
            self.dashboard.start()
            log.info("dashboard on %s", self.dashboard.url)
        return self

    def close(self) -> None:
        """Stop HTTP, then the worker, then the store; safe twice."""
        if self.dashboard is not None:
            self.dashboard.close()
        self.aggregator.close()
        self.store.close()

    def __enter__(self) -> CentralApp:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
