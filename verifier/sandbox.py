"""A complete key hierarchy in a few lines, for tests, demos and benchmarks.

Example::

    from verifier.sandbox import Sandbox
    sb = Sandbox.create(sites=("makkah-haram",), seed=1)
    raw = sb.issue(ptype="umrah", site="makkah-haram", slot=(start, end), party=3,
                   gate_groups=("north",))                      # "GP1:..." QR text
    permit = verify_at(raw, start + 60, trust=sb.store, revocations=sb.revocation_set())
    delta = sb.revoke(permit.permit_id)      # signed delta (version +1) for the downlink
    snap = sb.revocations()                  # signed snapshot of everything revoked so far
    beacon = sb.sign_document("time_beacon", {"t": start}, version=7)   # central key
    files = sb.bundle_files()                # name -> bytes: what `gatepass keys new` writes

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
rebuilds a Sandbox from those files (what ``gatepass keys rotate/revoke`` use).
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
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from verifier.documents import KIND_REVOCATION_DELTA, KIND_REVOCATION_SNAPSHOT, KIND_TRUST_LIST
from verifier.documents import sign_document as _sign_document
from verifier.issue import IssuedPermit, issue_permit
from verifier.keys import (
    ROLE_CENTRAL,
    ROLE_PERMIT,
    ROLE_REVOCATION,
    SigningKey,
    default_kid,
)
from verifier.revocation import RevocationSet, sign_delta, sign_snapshot
from verifier.trust import TrustBundle, TrustStore, trust_list_entry

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
class IssuerSpec:
    """Trust-list attributes of one sandbox key."""

    key: SigningKey
    issuer: str
    roles: tuple[str, ...] = (ROLE_PERMIT,)
    ptypes: tuple[str, ...] | None = None
    sites: tuple[str, ...] | None = None
    not_before: int = 0
    not_after: int = 2**62
    verify_until: int | None = None


@dataclass
class Sandbox:
    """Root, issuer, central and revocation keys plus a trust store: see the module docstring."""

    root: SigningKey
    sites: tuple[str, ...]
    issuer: str
    specs: dict[str, IssuerSpec]
    store: TrustStore
    trust_version: int = 0
    epoch: int = EPOCH
    issued: dict[str, IssuedPermit] = field(default_factory=dict)
    revoked: set[bytes] = field(default_factory=set)
    revocation_version: int = 0
    revocation_docs: list[bytes] = field(default_factory=list)
    _seed: Any = None
    _rng: random.Random | None = None
    _counter: int = 0

    @classmethod
    def create(
        cls,
        sites: Iterable[str] = ("makkah-haram",),
        seed: int | str | None = None,
        *,
        issuer: str = "moh",
        issuer_algs: Iterable[str] = ("ES256", "EdDSA"),
        ptypes: Iterable[str] | None = None,
        key_window: tuple[int, int] = (0, 2**62),
    ) -> Sandbox:
        """Root, one permit issuer key per algorithm in ``issuer_algs`` (named after the
        algorithm in lower case), ``central`` and ``revoker``; trust list version 1 applied.
        ``key_window`` is the issuers' (not_before, not_after) for permits' issued-at.
        Empty ``sites``: the issuer keys may sign for any site (then ``issue`` needs one)."""
        sites = tuple(sites)

        def make(label: str, alg: str) -> SigningKey:
            return SigningKey.generate(alg) if seed is None else derive_key(seed, label, alg)

        root = make("root", "ES256")
        specs = {
            alg.lower(): IssuerSpec(
                make(alg.lower(), alg),
                issuer,
                sites=sites or None,
                ptypes=None if ptypes is None else tuple(ptypes),
                not_before=key_window[0],
                not_after=key_window[1],
            )
            for alg in issuer_algs
        }
        specs["central"] = IssuerSpec(make("central", "ES256"), "central", roles=(ROLE_CENTRAL,))
        specs["revoker"] = IssuerSpec(make("revoker", "ES256"), "central", roles=(ROLE_REVOCATION,))
        store = TrustStore(root.public(), root_kid=root.kid)
        sb = cls(
            root=root,
            sites=sites,
            issuer=issuer,
            specs=specs,
            store=store,
            _seed=seed,
            _rng=None if seed is None else random.Random(str(seed)),
        )
        sb.publish_trust_list()
        return sb

    # -- keys and trust lists -------------------------------------------------------------

    @property
    def issuers(self) -> dict[str, SigningKey]:
        return {n: s.key for n, s in self.specs.items() if ROLE_PERMIT in s.roles}

    @property
    def central(self) -> SigningKey:
        return self.specs["central"].key

    @property
    def revoker(self) -> SigningKey:
        return self.specs["revoker"].key

    def add_issuer(
        self,
        name: str,
        alg: str = "ES256",
        *,
        kid: bytes | None = None,
        issuer: str | None = None,
        roles: Iterable[str] = (ROLE_PERMIT,),
        ptypes: Iterable[str] | None = None,
        sites: Iterable[str] | None = None,
        not_before: int = 0,
        not_after: int = 2**62,
        verify_until: int | None = None,
    ) -> SigningKey:
        """Add a key (not yet published: call :meth:`publish_trust_list`)."""
        key = (
            SigningKey.generate(alg, kid)
            if self._seed is None
            else derive_key(self._seed, f"extra/{name}", alg, kid)
        )
        self.specs[name] = IssuerSpec(
            key,
            issuer or self.issuer,
            tuple(roles),
            None if ptypes is None else tuple(ptypes),
            (self.sites or None) if sites is None else tuple(sites),
            not_before,
            not_after,
            verify_until,
        )
        return key

    def remove_issuer(self, name: str) -> None:
        """Drop a key from the next trust list (call :meth:`publish_trust_list`)."""
        del self.specs[name]

    def trust_list_body(self) -> dict[str, Any]:
        return {
            "keys": [
                trust_list_entry(
                    s.key.public(),
                    kid=s.key.kid,
                    alg=s.key.alg,
                    issuer=s.issuer,
                    roles=s.roles,
                    ptypes=s.ptypes,
                    sites=s.sites,
                    not_before=s.not_before,
                    not_after=s.not_after,
                    verify_until=s.verify_until,
                )
                for s in self.specs.values()
            ]
        }

    def sign_trust_list(self, version: int) -> bytes:
        """The current keys as a root-signed trust list of ``version`` (not applied)."""
        return _sign_document(KIND_TRUST_LIST, self.trust_list_body(), version, self.root)

    def publish_trust_list(self, *, apply: bool = True) -> bytes:
        """Sign the next trust-list version and (by default) apply it to ``store``."""
        self.trust_version += 1
        raw = self.sign_trust_list(self.trust_version)
        if apply:
            self.store.apply(raw)
        return raw

    def new_store(self) -> TrustStore:
        """A fresh gate-side store with the latest trust list (as a gate would build it)."""
        return self.bundle().store()

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

    def revoke(self, *permits: bytes | str) -> bytes:
        """Revoke permits (ids, QR texts or ph of minted permits); return the signed delta
        moving the revocation version by one (also kept in ``revocation_docs``)."""
        ids = {self._as_id(p) for p in permits}
        base = self.revocation_version
        self.revocation_version += 1
        self.revoked |= ids
        raw = sign_delta(base, self.revocation_version, self.revoker, add=ids)
        self.revocation_docs.append(raw)
        return raw

    def revocations(self, extra_ids: Iterable[bytes] = ()) -> bytes:
        """A signed snapshot of everything revoked (plus ``extra_ids``), next version."""
        self.revoked |= set(extra_ids)
        self.revocation_version += 1
        raw = sign_snapshot(self.revoked, self.revocation_version, self.revoker)
        self.revocation_docs = [raw]
        return raw

    def revocation_set(
        self, store: TrustStore | None = None, *, now: float | None = None
    ) -> RevocationSet:
        """A gate-side :class:`RevocationSet` with every revocation document applied, the
        signers' validity checked at ``now`` (default: the sandbox's ``epoch``)."""
        revset = RevocationSet(store or self.store)
        for raw in self.revocation_docs:
            revset.apply(raw, now=self.epoch if now is None else now)
        return revset

    def sign_document(
        self,
        kind: str,
        body: Any,
        version: int,
        *,
        signer: str | None = None,
        issued_at: int | None = None,
    ) -> bytes:
        """Sign a downlink document. ``signer``: "root", "central", "revoker" or a key name;
        by default root for trust lists, revoker for revocations, central otherwise."""
        if signer is None:
            signer = {
                KIND_TRUST_LIST: "root",
                KIND_REVOCATION_SNAPSHOT: "revoker",
                KIND_REVOCATION_DELTA: "revoker",
            }.get(kind, "central")
        key = self.root if signer == "root" else self.specs[signer].key
        return _sign_document(kind, body, version, key, issued_at=issued_at)

    # -- files ----------------------------------------------------------------------------

    def bundle(self) -> TrustBundle:
        """The gate's trust bundle: root public key, trust list, revocation documents."""
        return TrustBundle(
            root_spki=self.root.public_der(),
            root_alg=self.root.alg,
            root_kid=self.root.kid,
            trust_list=self.store.trust_list,
            revocations=tuple(self.revocation_docs),
        )

    def bundle_files(self) -> Mapping[str, bytes]:
        """File name -> contents, the layout ``gatepass keys new`` writes (see keys_manifest)."""
        files: dict[str, bytes] = {"root.pem": self.root.to_pem()}
        for name, spec in self.specs.items():
            files[f"{name}.pem"] = spec.key.to_pem()
        files["keys.json"] = keys_manifest(self)
        files["trust.json"] = self.bundle().to_bytes()
        return files


def load_sandbox(files: Mapping[str, bytes], *, now: float) -> Sandbox:
    """Rebuild a :class:`Sandbox` from :meth:`Sandbox.bundle_files` contents (file name ->
    bytes), e.g. to rotate keys or revoke permits in a ``gatepass keys new`` directory.
    ``now`` is the time the revocation signers' validity is checked at.
    Raises :class:`~verifier.errors.KeyUnusable` when a file is missing or inconsistent."""
    import json

    from verifier.documents import read_document
    from verifier.errors import KeyUnusable, VerifierError

    try:
        manifest = json.loads(files["keys.json"])
        if manifest.get("format") != "gatepass-keys/1":
            raise KeyUnusable("keys.json format must be gatepass-keys/1")
        root_meta = manifest["root"]
        root = SigningKey.from_pem(files[root_meta["file"]], kid=bytes.fromhex(root_meta["kid"]))
        specs = {}
        for name, meta in manifest["keys"].items():
            key = SigningKey.from_pem(files[meta["file"]], kid=bytes.fromhex(meta["kid"]))
            specs[name] = IssuerSpec(
                key,
                meta["issuer"],
                tuple(meta["roles"]),
                None if meta["types"] is None else tuple(meta["types"]),
                None if meta["sites"] is None else tuple(meta["sites"]),
                int(meta["nbf"]),
                int(meta["exp"]),
                None if meta["until"] is None else int(meta["until"]),
            )
        bundle = TrustBundle.from_bytes(files["trust.json"])
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, VerifierError):
            raise
        raise KeyUnusable(f"key directory incomplete or invalid ({exc!r})") from None
    if bundle.root_kid != root.kid or bundle.root_spki != root.public_der():
        raise KeyUnusable("trust.json was not made for this root key")
    store = bundle.store()
    issuers = [s.issuer for s in specs.values() if ROLE_PERMIT in s.roles]
    sb = Sandbox(
        root=root,
        sites=tuple(next((s.sites for s in specs.values() if s.sites), ())),
        issuer=issuers[0] if issuers else "moh",
        specs=specs,
        store=store,
        trust_version=store.version,
    )
    revset = RevocationSet(store)
    for raw in bundle.revocations:
        revset.apply(raw, now=now)
        doc = read_document(
            raw, (KIND_REVOCATION_SNAPSHOT, KIND_REVOCATION_DELTA), store, now=now
        )
        if doc.kind == KIND_REVOCATION_SNAPSHOT:
            blob = doc.body["ids"]
            sb.revoked = {blob[i : i + 16] for i in range(0, len(blob), 16)}
        else:
            add, rem = doc.body["add"], doc.body["remove"]
            sb.revoked -= {rem[i : i + 16] for i in range(0, len(rem), 16)}
            sb.revoked |= {add[i : i + 16] for i in range(0, len(add), 16)}
    sb.revocation_version = revset.version
    sb.revocation_docs = list(bundle.revocations)
    return sb


def keys_manifest(sb: Sandbox) -> bytes:
    """``keys.json``: what each private key file is (kid, alg, issuer, roles, scope)."""
    import json

    doc = {
        "format": "gatepass-keys/1",
        "root": {"file": "root.pem", "kid": sb.root.kid.hex(), "alg": sb.root.alg},
        "trust_version": sb.trust_version,
        "keys": {
            name: {
                "file": f"{name}.pem",
                "kid": s.key.kid.hex(),
                "alg": s.key.alg,
                "issuer": s.issuer,
                "roles": list(s.roles),
                "types": None if s.ptypes is None else list(s.ptypes),
                "sites": None if s.sites is None else list(s.sites),
                "nbf": s.not_before,
                "exp": s.not_after,
                "until": s.verify_until,
            }
            for name, s in sb.specs.items()
        },
    }
    return (json.dumps(doc, indent=1) + "\n").encode()
