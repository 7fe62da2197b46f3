"""The gate's trust state: root key, issuer keys and revocations, swapped atomically.

Loaded from the trust bundle file at start; sync delivers newer signed trust lists and
revocation snapshots/deltas, which :class:`verifier.trust.TrustStore` and
:class:`verifier.revocation.RevocationSet` verify (and refuse when older: no rollback).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from gate_agent.errors import ConfigError
from verifier.errors import VerifierError
from verifier.revocation import RevocationSet
from verifier.trust import TrustBundle, TrustStore

log = logging.getLogger(__name__)


class GateTrust:
    """The keys and revocations permits are checked against. Thread-safe.

    ``store`` and ``revocations`` are read per scan; updates take a lock so a scan never
    sees a half-applied delta.
    """

    def __init__(self, store: TrustStore, revocations: RevocationSet | None = None) -> None:
        self._lock = threading.Lock()
        self.store = store
        self.revocations = revocations if revocations is not None else RevocationSet(store)

    @classmethod
    def from_bundle(cls, data: bytes, *, extra_revocations: bytes | None = None) -> GateTrust:
        bundle = TrustBundle.from_bytes(data)
        store = bundle.store()
        revset = bundle.revocation_set(store)
        if extra_revocations:
            revset.apply(extra_revocations)
        return cls(store, revset)

    @classmethod
    def from_files(cls, bundle: Path, revocations: Path | None = None) -> GateTrust:
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
            return cls.from_bundle(data, extra_revocations=extra)
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
            version = self.revocations.apply(signed)
        log.info("revocations applied", extra={"version": version, "count": len(self.revocations)})
        return version
