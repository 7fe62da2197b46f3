"""The gate's trust state: root key, issuer keys and revocations, swapped atomically.

Loaded from the trust bundle file at start; sync delivers newer signed trust lists and
revocation snapshots/deltas, which :class:`verifier.trust.TrustStore` and
:class:`verifier.revocation.RevocationSet` verify (signer validity at the gate's clock)
and refuse when not newer (:func:`verifier.documents.check_newer`: no rollback).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from gate_agent.errors import ConfigError
from verifier.errors import VerifierError
from verifier.revocation import RevocationSet
from verifier.trust import TrustBundle, TrustStore

log = logging.getLogger(__name__)


class GateTrust:
    """The keys and revocations permits are checked against. Thread-safe.

    ``store`` and ``revocations`` are read per scan; updates take a lock so a scan never
    sees a half-applied delta. ``clock`` (seconds since the epoch) is the time a
    revocation signer's validity is checked at: a retired revocation key signs nothing.
    """

    def __init__(
        self,
        store: TrustStore,
        revocations: RevocationSet | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lock = threading.Lock()
        self.store = store
        self.revocations = revocations if revocations is not None else RevocationSet(store)
        self.clock = clock

    @classmethod
    def from_bundle(
        cls,
        data: bytes,
        *,
        extra_revocations: bytes | None = None,
        clock: Callable[[], float] = time.time,
    ) -> GateTrust:
        bundle = TrustBundle.from_bytes(data)
        store = bundle.store()
        now = clock()
        revset = bundle.revocation_set(store, now=now)
        if extra_revocations:
            revset.apply(extra_revocations, now=now)
        return cls(store, revset, clock=clock)

    @classmethod
    def from_files(
        cls,
        bundle: Path,
        revocations: Path | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> GateTrust:
        """Load the configured files; raise :class:`ConfigError` saying which one is bad."""
        try:
            data = bundle.read_bytes()
            extra = revocations.read_bytes() if revocations is not None else None
        except OSError as exc:
            raise ConfigError(
                f"cannot read trust file {exc.filename}: {exc.strerror}"
                " (check trust.bundle / trust.revocations)"
            ) from None
        try:
            return cls.from_bundle(data, extra_revocations=extra, clock=clock)
        except (VerifierError, ValueError) as exc:
            raise ConfigError(f"trust bundle {bundle} refused: {exc}") from None

    def apply_trust_list(self, signed: bytes) -> int:
        """A newer signed trust list from sync; raises ``DocumentRefused`` when refused."""
        with self._lock:
            version = self.store.apply(signed)
        log.info("trust list applied", extra={"version": version})
        return version

    def apply_revocations(self, signed: bytes) -> int:
        """A signed revocation snapshot or delta from sync; raises ``DocumentRefused``."""
        with self._lock:
            version = self.revocations.apply(signed, now=self.clock())
        log.info("revocations applied", extra={"version": version, "count": len(self.revocations)})
        return version
