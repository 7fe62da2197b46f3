"""Signed permits: format, keys, trust lists, revocation and offline verification.

Pure: nothing here reads the clock or touches files or the network. Time is a
parameter (``verify_at(raw, now, ...)``). See docs/permit-format.md.
"""

from __future__ import annotations

from verifier import documents
from verifier.errors import DocumentRefused, PermitRefused, Reason
from verifier.issue import IssuedPermit, issue_permit
from verifier.keys import SigningKey, TrustedKey
from verifier.permit import VerifiedPermit, holder_hash, permit_hash
from verifier.revocation import RevocationSet
from verifier.trust import TrustBundle, TrustStore
from verifier.verify import SlotWindow, verify_at

__all__ = [
    "DocumentRefused",
    "IssuedPermit",
    "PermitRefused",
    "Reason",
    "RevocationSet",
    "SigningKey",
    "SlotWindow",
    "TrustBundle",
    "TrustStore",
    "TrustedKey",
    "VerifiedPermit",
    "documents",
    "holder_hash",
    "issue_permit",
    "permit_hash",
    "verify_at",
]
