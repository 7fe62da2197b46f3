"""A complete key hierarchy in a few lines, for tests, demos and benchmarks.

:class:`Sandbox` is a :class:`verifier.keyring.KeyRing` (what ``gatepass keys new`` makes,
with fresh random keys) plus reproducible keys from a ``seed`` (derived, so not secret:
never for a real site) and permit minting.

Example::

    from verifier.sandbox import Sandbox
    sb = Sandbox.create(sites=("makkah-haram",), seed=1)
    raw = sb.issue(ptype="umrah", site="makkah-haram", slot=(start, end), party=3,
                   gate_groups=("north",))                      # "GP1:..." QR text
    permit = verify_at(raw, start + 60, trust=sb.store, revocations=sb.revocation_set())
    delta = sb.revoke(permit.permit_id)      # signed delta (version +1) for the downlink
    snap = sb.revocations()                  # signed snapshot of everything revoked so far
    beacon = sb.sign_document("time_beacon", {"t": start}, version=7)   # central key
    files = sb.bundle_files()                # name -> bytes: the key-directory layout

What it holds (all public attributes, stable):

- ``root``: root :class:`SigningKey` (ES256); ``store``: a :class:`TrustStore` built
  from the root public key with the current trust list applied.
- ``issuers``: name -> :class:`SigningKey`; two permit issuers by default, ``"es256"``
  (ES256) and ``"eddsa"`` (EdDSA), both for issuer name ``issuer`` (``"moh"``), any
  permit type, the given ``sites``. ``central`` (role ``central``: time beacons, gate
  config, used-permit batches) and ``revoker`` (role ``revocation``).
- ``epoch``: a fixed base time (2026-05-28 20:26:40 UTC) used when no slot is given.
- ``issued``: QR text -> :class:`IssuedPermit` for every permit minted here.

Rotation and rollback tests: ``add_issuer(...)`` / ``remove_issuer(name)`` or edit
``specs[name]`` (an :class:`IssuerSpec`: validity window, ``verify_until``, scope), then
``publish_trust_list()`` (signs and applies the next version; ``apply=False`` to get
the bytes only); ``sign_trust_list(version)`` signs any version.

Gate-side views: ``new_store()`` (a fresh TrustStore from the bundle, as a gate builds
it), ``revocation_set()`` (every revocation document applied), ``bundle()`` (the
:class:`TrustBundle`), ``bundle_files()`` (file name -> bytes). ``load_sandbox(files)``
rebuilds a Sandbox from those files (``gatepass keys rotate/revoke`` use
:func:`verifier.keyring.load_keyring`).
Time is a parameter here too: ``revocation_set(now=...)`` (default ``epoch``) and
``load_sandbox(files, now=...)`` check the revocation signers' validity at it.

With ``seed`` the keys and permit ids are reproducible (signatures still vary: ECDSA
uses a random nonce). Nothing here touches the clock, files or network: writing a key
directory is ``gatepass.keyfiles.write_key_directory(sb, directory)``.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from verifier.issue import IssuedPermit, issue_permit
from verifier.keyring import (
    IssuerSpec,
    KeyRing,
    generate_key,
    keys_manifest,
    load_keyring,
)
from verifier.keys import SigningKey, default_kid
from verifier.revocation import RevocationSet
from verifier.trust import TrustStore

__all__ = ["EPOCH", "IssuerSpec", "Sandbox", "derive_key", "keys_manifest", "load_sandbox"]

EPOCH = 1_780_000_000
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def derive_key(
    seed: int | str | bytes, label: str, alg: str, kid: bytes | None = None
) -> SigningKey:
    """A reproducible key from ``seed`` and ``label`` (tests and demos only: not secret)."""
    material = hashlib.sha256(f"gatepass-sandbox/{seed!r}/{label}".encode()).digest()
    private: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    if alg == "ES256":
        scalar = int.from_bytes(material, "big") % (_P256_ORDER - 1) + 1
        private = ec.derive_private_key(scalar, ec.SECP256R1())
    else:
        private = ed25519.Ed25519PrivateKey.from_private_bytes(material)
    return SigningKey(kid if kid is not None else default_kid(private.public_key()), alg, private)


@dataclass
class Sandbox(KeyRing):
    """A :class:`KeyRing` for tests, demos and benchmarks: reproducible keys from ``seed``
    and permit minting; see the module docstring."""

    epoch: int = EPOCH
    issued: dict[str, IssuedPermit] = field(default_factory=dict)
    _seed: Any = None
    _rng: random.Random | None = None
    _counter: int = 0

    @classmethod
    def create(  # type: ignore[override]
        cls,
        sites: Iterable[str] = ("makkah-haram",),
        seed: int | str | None = None,
        *,
        issuer: str = "moh",
        issuer_algs: Iterable[str] = ("ES256", "EdDSA"),
        ptypes: Iterable[str] | None = None,
        key_window: tuple[int, int] = (0, 2**62),
    ) -> Sandbox:
        """:meth:`KeyRing.create` with reproducible keys when ``seed`` is given, and both
        algorithms' issuer keys by default."""

        def make(label: str, alg: str, kid: bytes | None) -> SigningKey:
            return generate_key(label, alg, kid) if seed is None else derive_key(
                seed, label, alg, kid)

        sb: Sandbox = super().create(
            sites, issuer=issuer, issuer_algs=issuer_algs, ptypes=ptypes,
            key_window=key_window, make_key=make, _seed=seed,
            _rng=None if seed is None else random.Random(str(seed)),
        )
        return sb

    def _new_key(self, label: str, alg: str, kid: bytes | None) -> SigningKey:
        if self._seed is None:
            return generate_key(label, alg, kid)
        return derive_key(self._seed, label, alg, kid)

    # -- permits --------------------------------------------------------------------------

    def _permit_id(self) -> bytes:
        return os.urandom(16) if self._rng is None else self._rng.randbytes(16)

    def issue_full(
        self,
        *,
        ptype: str = "umrah",
        site: str | None = None,
        slot: tuple[int, int] | None = None,
        party: int = 1,
        gate_groups: Iterable[str] = ("north",),
        route: str | None = None,
        departure: int | None = None,
        key: str = "es256",
        issued_at: int | None = None,
        initials: str = "AB",
        doc_number: str | None = "P1234567",
        health: str = "ok",
        expires_at: int | None = None,
        not_before: int | None = None,
        issuer: str | None = None,
    ) -> IssuedPermit:
        """Mint a permit with the issuer key named ``key``; see :meth:`issue`."""
        slot = slot if slot is not None else (self.epoch, self.epoch + 3600)
        spec = self.specs[key]
        if site is None and not self.sites:
            raise ValueError("this sandbox allows any site: pass site=...")
        permit = issue_permit(
            spec.key,
            issuer=issuer or spec.issuer,
            issued_at=slot[0] - 86400 if issued_at is None else issued_at,
            ptype=ptype,
            site=site or self.sites[0],
            slot=slot,
            party=party,
            gate_groups=tuple(gate_groups),
            initials=initials,
            doc_number=doc_number,
            health=health,
            route=route,
            departure=departure,
            expires_at=expires_at,
            not_before=not_before,
            permit_id=self._permit_id(),
        )
        self.issued[permit.text] = permit
        return permit

    def issue(self, **kwargs: Any) -> str:
        """Mint a permit and return its QR text (``GP1:...``). Keyword arguments as
        :meth:`issue_full`: ``ptype, site, slot=(start, end), party, gate_groups, route,
        departure, key ("es256" | "eddsa" | added name), issued_at, initials, doc_number,
        health, expires_at, not_before, issuer``."""
        return self.issue_full(**kwargs).text

    def permit_id(self, text: str) -> bytes:
        """The permit id of a permit minted here."""
        return self.issued[text].permit_id

    # -- revocation and other documents ---------------------------------------------------

    def _as_id(self, permit: bytes | str) -> bytes:
        if isinstance(permit, bytes):
            return permit
        if permit in self.issued:
            return self.issued[permit].permit_id
        for p in self.issued.values():
            if p.ph == permit:
                return p.permit_id
        raise KeyError(f"unknown permit {permit[:24]!r}: pass its id, QR text or ph")

    def revoke(self, *permits: bytes | str) -> bytes:  # type: ignore[override]
        """Revoke permits (ids, QR texts or ph of minted permits); return the signed delta
        moving the revocation version by one (also kept in ``revocation_docs``)."""
        return super().revoke(*{self._as_id(p) for p in permits})

    def revocation_set(
        self, store: TrustStore | None = None, *, now: float | None = None
    ) -> RevocationSet:
        """As :meth:`KeyRing.revocation_set`, the signers checked at ``now`` (default: the
        sandbox's ``epoch``)."""
        return super().revocation_set(store, now=self.epoch if now is None else now)


def load_sandbox(files: Mapping[str, bytes], *, now: float) -> Sandbox:
    """A :class:`Sandbox` over a key directory's files (see :func:`load_keyring`)."""
    ring = load_keyring(files, now=now)
    return Sandbox(**{f.name: getattr(ring, f.name) for f in fields(KeyRing)})
