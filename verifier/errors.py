"""Exceptions raised by :mod:`verifier`.

Tree::

    GatepassError
    └── VerifierError
        ├── PermitRefused (ValueError)      carries a Reason code; what verify_at raises
        ├── DocumentRefused (ValueError)    a signed trust list / revocation list / beacon refused
        └── KeyUnusable (ValueError)        a key file, trust bundle or key parameter is unusable
"""

from __future__ import annotations

from enum import StrEnum


class GatepassError(Exception):
    """Root of every error gatepass raises on purpose."""


class VerifierError(GatepassError):
    """Root of the errors raised by :mod:`verifier`."""


class Reason(StrEnum):
    """Why a permit (or signed document) is refused. Stable wire values: never renumber."""

    TOO_LARGE = "too_large"
    MALFORMED = "malformed"
    UNSUPPORTED_VERSION = "unsupported_version"
    BAD_ENCODING = "bad_encoding"
    DECOMPRESSION_LIMIT = "decompression_limit"
    BAD_COSE = "bad_cose"
    BAD_ALGORITHM = "bad_algorithm"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    KEY_OUT_OF_SCOPE = "key_out_of_scope"
    KEY_NOT_VALID = "key_not_valid"
    BAD_CLAIMS = "bad_claims"
    ISSUED_IN_FUTURE = "issued_in_future"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    REVOKED = "revoked"
    ROLLBACK = "rollback"
    TOO_EARLY = "too_early"  # before the slot start minus the early grace
    TOO_LATE = "too_late"  # after the slot end plus the late grace
    WRONG_KIND = "wrong_kind"  # a signed document of another kind than expected
    VERSION_GAP = "version_gap"  # a revocation delta that does not follow the held version
    NON_CANONICAL = "non_canonical"  # signed CBOR not in its one deterministic encoding
    BAD_PRESENTATION = "bad_presentation"  # GPP1: proof malformed, wrong key, or permit has no cnf
    PRESENTATION_EXPIRED = "presentation_expired"  # the proof's time step is past (+ tolerance)
    PRESENTATION_IN_FUTURE = "presentation_in_future"  # the proof's step is ahead of the gate
    PRESENTATION_REQUIRED = "presentation_required"  # a holder-bound permit shown bare (GP1:)


class PermitRefused(VerifierError, ValueError):
    """A permit failed verification; ``reason`` says why, ``detail`` says more for logs."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)


class DocumentRefused(VerifierError, ValueError):
    """A signed document (trust list, revocation list, time beacon...) was refused."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)


class KeyUnusable(VerifierError, ValueError):
    """A key, key file or trust bundle cannot be used (wrong format, algorithm or size)."""
