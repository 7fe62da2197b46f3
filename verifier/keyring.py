"""The key hierarchy an operator runs: root, permit issuers, central and revocation keys.

``gatepass keys new|rotate|revoke`` use this module: fresh keys from the operating
system's random source (``SigningKey.generate``), a root-signed trust list, revocation
snapshots and deltas, and the key-directory file layout. Tests and demos use
:class:`verifier.sandbox.Sandbox`, which adds reproducible (seeded, therefore not secret)
keys and permit minting on top of this class.

Nothing here touches the clock, files or network: ``now`` is a parameter, and writing a
key directory is ``gatepass.keyfiles.write_key_directory(ring, directory)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from verifier.documents import KIND_REVOCATION_DELTA, KIND_REVOCATION_SNAPSHOT, KIND_TRUST_LIST
from verifier.documents import sign_document as _sign_document
from verifier.keys import (
    ROLE_CENTRAL,
    ROLE_PERMIT,
    ROLE_REVOCATION,
    SigningKey,
)
from verifier.revocation import RevocationSet, sign_delta, sign_snapshot
from verifier.trust import TrustBundle, TrustStore, trust_list_entry

KeyMaker = Callable[[str, str, "bytes | None"], SigningKey]


def generate_key(label: str, alg: str, kid: bytes | None = None) -> SigningKey:
    """A fresh key from the operating system's random source (``label`` is unused)."""
    return SigningKey.generate(alg, kid)


@dataclass
class IssuerSpec:
    """Trust-list attributes of one key of the ring."""

    key: SigningKey
    issuer: str
    roles: tuple[str, ...] = (ROLE_PERMIT,)
    ptypes: tuple[str, ...] | None = None
    sites: tuple[str, ...] | None = None
    not_before: int = 0
    not_after: int = 2**62
    verify_until: int | None = None


@dataclass
class KeyRing:
    """Root, issuer, central and revocation keys, the trust store they make, and the
    revocation state: what an operator's key directory holds."""

    root: SigningKey
    sites: tuple[str, ...]
    issuer: str
    specs: dict[str, IssuerSpec]
    store: TrustStore
    trust_version: int = 0
    revoked: set[bytes] = field(default_factory=set)
    revocation_version: int = 0
    revocation_docs: list[bytes] = field(default_factory=list)

    @classmethod
    def create(
        cls,
        sites: Iterable[str] = (),
        *,
        issuer: str = "moh",
        issuer_algs: Iterable[str] = ("ES256",),
        ptypes: Iterable[str] | None = None,
        key_window: tuple[int, int] = (0, 2**62),
        make_key: KeyMaker = generate_key,
        **extra: Any,
    ) -> Any:
        """Root, one permit issuer key per algorithm in ``issuer_algs`` (named after the
        algorithm in lower case), ``central`` and ``revoker``; trust list version 1 applied.
        ``key_window`` is the issuers' (not_before, not_after) for permits' issued-at.
        Empty ``sites``: the issuer keys may sign for any site. ``make_key(label, alg, kid)``
        makes each key (fresh random keys unless a subclass asks otherwise); ``extra`` goes
        to a subclass's own fields."""
        sites = tuple(sites)
        root = make_key("root", "ES256", None)
        specs = {
            alg.lower(): IssuerSpec(
                make_key(alg.lower(), alg, None),
                issuer,
                sites=sites or None,
                ptypes=None if ptypes is None else tuple(ptypes),
                not_before=key_window[0],
                not_after=key_window[1],
            )
            for alg in issuer_algs
        }
        specs["central"] = IssuerSpec(make_key("central", "ES256", None), "central",
                                      roles=(ROLE_CENTRAL,))
        specs["revoker"] = IssuerSpec(make_key("revoker", "ES256", None), "central",
                                      roles=(ROLE_REVOCATION,))
        store = TrustStore(root.public(), root_kid=root.kid)
        ring = cls(root=root, sites=sites, issuer=issuer, specs=specs, store=store, **extra)
        ring.publish_trust_list()
        return ring

    def _new_key(self, label: str, alg: str, kid: bytes | None) -> SigningKey:
        """A key added later (rotation): fresh and random here."""
        return generate_key(label, alg, kid)

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
        key = self._new_key(f"extra/{name}", alg, kid)
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

    # -- revocation and other documents ---------------------------------------------------

    def revoke(self, *ids: bytes) -> bytes:
        """Revoke permits by id; return the signed delta moving the revocation version by
        one (also kept in ``revocation_docs``)."""
        base = self.revocation_version
        self.revocation_version += 1
        self.revoked |= set(ids)
        raw = sign_delta(base, self.revocation_version, self.revoker, add=set(ids))
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
        signers' validity checked at ``now`` (required here; the sandbox has a default)."""
        if now is None:
            raise ValueError("now is required: the revocation signers are checked at it")
        revset = RevocationSet(store or self.store)
        for raw in self.revocation_docs:
            revset.apply(raw, now=now)
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


def load_keyring(files: Mapping[str, bytes], *, now: float) -> KeyRing:
    """Rebuild a :class:`KeyRing` from :meth:`KeyRing.bundle_files` contents (file name ->
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
    sb = KeyRing(
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


def keys_manifest(sb: KeyRing) -> bytes:
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
