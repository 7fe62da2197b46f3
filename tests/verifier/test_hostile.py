"""Hostile input: every single-character change, truncation and extension of valid permits,
size limits, zlib bombs, hostile CBOR, and a seeded 100,000-case mutation fuzz."""

from __future__ import annotations

import random
import zlib

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from permit_helpers import NOW, SLOT, text_from_cose

from verifier import PermitRefused, Reason, TrustStore, base45, envelope, verify_at
from verifier.sandbox import Sandbox

ALPHABET = base45.ALPHABET
FOREIGN = "abz\u00e9\u0661\x00\n"


@pytest.fixture(scope="module")
def hostile() -> tuple[Sandbox, dict[str, str]]:
    sb = Sandbox.create(sites=("makkah-haram",), seed="hostile")
    permits = {
        "es256": sb.issue(slot=SLOT, party=3, initials="AK"),
        "eddsa": sb.issue(slot=SLOT, key="eddsa", party=2),
        "zlib": sb.issue(slot=SLOT, gate_groups=tuple(f"north-gate-{i}" for i in range(8))),
    }
    assert base45.decode(permits["zlib"][4:])[0] == 0x78  # really compressed
    assert base45.decode(permits["es256"][4:])[0] == 0xD2  # really bare
    return sb, permits


def _refusal(raw: object, store: TrustStore) -> Reason:
    try:
        verify_at(raw, NOW, trust=store)  # type: ignore[arg-type]
    except PermitRefused as exc:
        return exc.reason
    raise AssertionError(f"accepted a changed payload: {raw!r}")


@pytest.mark.parametrize("which", ["es256", "eddsa", "zlib"])
def test_every_single_character_change_is_refused(
    hostile: tuple[Sandbox, dict[str, str]], which: str
) -> None:
    sb, permits = hostile
    text = permits[which]
    assert verify_at(text, NOW, trust=sb.store)
    reasons: set[Reason] = set()
    for i, original in enumerate(text):
        for ch in ALPHABET + FOREIGN:
            if ch != original:
                reasons.add(_refusal(text[:i] + ch + text[i + 1 :], sb.store))
    # the changes die at several layers (compressed ones at zlib's checksum or the
    # canonical-stream check, before any signature work)
    expected = {Reason.BAD_ENCODING, Reason.MALFORMED, Reason.UNSUPPORTED_VERSION}
    expected.add(Reason.BAD_ENCODING if which == "zlib" else Reason.BAD_SIGNATURE)
    assert expected <= reasons, reasons


@pytest.mark.parametrize("which", ["es256", "eddsa", "zlib"])
def test_every_truncation_and_extension_is_refused(
    hostile: tuple[Sandbox, dict[str, str]], which: str
) -> None:
    sb, permits = hostile
    text = permits[which]
    for n in range(len(text)):
        _refusal(text[:n], sb.store)
        _refusal(text[n + 1 :], sb.store)  # truncated from the front
    for extra in [*ALPHABET, *FOREIGN, "00", "000", "GP1:", text[-3:], "\n"]:
        _refusal(text + extra, sb.store)
        _refusal(extra + text, sb.store)
    for pad in (" ", "\t", "\r\n"):
        _refusal(pad + text, sb.store)


def test_compressed_permit_sent_bare_is_the_same_permit(
    hostile: tuple[Sandbox, dict[str, str]],
) -> None:
    """Documented: the permit is its signed bytes; a bare re-encoding is not a new permit."""
    sb, permits = hostile
    bare = envelope.PREFIX + base45.encode(envelope.unwrap(permits["zlib"]))
    assert bare != permits["zlib"]
    assert (
        verify_at(bare, NOW, trust=sb.store).ph
        == verify_at(permits["zlib"], NOW, trust=sb.store).ph
    )


def test_prefix_versions_and_case(hostile: tuple[Sandbox, dict[str, str]]) -> None:
    sb, permits = hostile
    body = permits["es256"][4:]
    assert _refusal("GP2:" + body, sb.store) == Reason.UNSUPPORTED_VERSION
    assert _refusal("GP10:" + body, sb.store) == Reason.UNSUPPORTED_VERSION
    for prefix in ("gp1:", "GP1", "HC1:", "", "GP1::"):
        assert _refusal(prefix + body, sb.store) in {Reason.MALFORMED, Reason.BAD_ENCODING}


def test_oversized_input_refused_before_work(hostile: tuple[Sandbox, dict[str, str]]) -> None:
    sb, _ = hostile
    limit = envelope.MAX_TEXT_LEN
    assert _refusal("GP1:" + "0" * (limit - 3), sb.store) == Reason.TOO_LARGE
    assert _refusal(b"GP1:" + b"0" * (limit - 3), sb.store) == Reason.TOO_LARGE
    # a 50 MB string is refused on its length alone (no Base45 error about its content)
    assert _refusal("GP1:" + "\u00e9" * 50_000_000, sb.store) == Reason.TOO_LARGE


def test_zlib_bomb_and_non_canonical_streams(hostile: tuple[Sandbox, dict[str, str]]) -> None:
    sb, permits = hostile
    bomb = zlib.compress(b"\xd2" + b"\x00" * 700_000, 9)
    assert len(envelope.PREFIX + base45.encode(bomb)) <= envelope.MAX_TEXT_LEN
    assert _refusal(envelope.PREFIX + base45.encode(bomb), sb.store) == Reason.DECOMPRESSION_LIMIT
    just_over = zlib.compress(b"\xd2" + b"\x00" * envelope.MAX_COSE_LEN, 9)
    assert _refusal(envelope.PREFIX + base45.encode(just_over), sb.store) == (
        Reason.DECOMPRESSION_LIMIT
    )
    cose = envelope.unwrap(permits["zlib"])
    good = zlib.compress(cose, 9)
    for stream in (
        zlib.compress(cose, 0),  # stored blocks: valid zlib, not the canonical form
        zlib.compress(cose, 1),
        good + b"\x00",  # junk after the stream
        good[:-1],  # truncated checksum
        good[:-4] + bytes(4),  # wrong checksum
        bytes([good[0], good[1] ^ 0x20]) + good[2:],  # FDICT bit set
    ):
        if stream != good:
            reason = _refusal(envelope.PREFIX + base45.encode(stream), sb.store)
            assert reason == Reason.BAD_ENCODING
    # compressing a permit that zlib does not shrink is refused as non-canonical
    bare = envelope.unwrap(permits["es256"])
    assert len(zlib.compress(bare, 9)) >= len(bare)
    wrapped = envelope.PREFIX + base45.encode(zlib.compress(bare, 9))
    assert _refusal(wrapped, sb.store) == Reason.BAD_ENCODING


def test_hostile_cbor_shapes(hostile: tuple[Sandbox, dict[str, str]]) -> None:
    sb, _ = hostile
    cases = {
        b"\xd2" + b"\x81" * 700: Reason.BAD_COSE,  # deep arrays
        b"\xd2\x84" + b"\x5a\xff\xff\xff\xff": Reason.BAD_COSE,  # 4 GB byte string claimed
        b"\xd2\x84\x5b" + b"\xff" * 8: Reason.BAD_COSE,  # 64-bit length
        b"\xd2\x9f\x40\xa0\x40\x40\xff": Reason.BAD_COSE,  # indefinite array
        b"\xd2\x84\x5f\x40\xff\xa0\x40\x40": Reason.BAD_COSE,  # indefinite bstr
        b"\xd2\x84\x58\x03abc\xa0\x40\x40": Reason.BAD_COSE,  # non-shortest length
        b"\xd2\x84\x40\xa0\x40\x40": Reason.BAD_COSE,  # empty protected header
        b"\xd2\x84\x43\x81\x81\x81\xa0\x40\x40": Reason.BAD_COSE,  # nested header
        b"\xd2\x84\x44\xa1\x01\x26\x00\xa0\x40\x40": Reason.NON_CANONICAL,  # trailing header byte
        b"\xd2\x84\x45\xa2\x01\x26\x01\x26\xa0\x40\x40": Reason.NON_CANONICAL,  # duplicate key
        b"\xd2\x84\x43\xa1\x01\x26\xa0\x40\x40\x00": Reason.BAD_COSE,  # trailing byte
        b"\xd2\x83\x43\xa1\x01\x26\xa0\x40": Reason.BAD_COSE,  # 3 items
        b"\xd2\x84\x43\xa1\x01\x26\xa0\x40": Reason.BAD_COSE,  # missing signature
        b"\xd8\x3d\xd2\x84": Reason.BAD_COSE,  # CWT tag 61 wrapper: not our shape
        b"\x84\x43\xa1\x01\x26\xa0\x40\x40": Reason.BAD_COSE,  # untagged
        b"\xd2\x84\x43\xa1\x01\x26\xa0\x40\x40": Reason.BAD_COSE,  # no kid
    }
    for cose_bytes, reason in cases.items():
        assert _refusal(text_from_cose(cose_bytes), sb.store) == reason, cose_bytes[:12]


def _mutate(rng: random.Random, text: str, cose_bytes: bytes) -> str:
    op = rng.randrange(9)
    if op == 0:  # replace one character
        i = rng.randrange(len(text))
        return text[:i] + rng.choice(ALPHABET) + text[i + 1 :]
    if op == 1:  # delete a run
        i = rng.randrange(len(text))
        return text[:i] + text[i + rng.randint(1, 8) :]
    if op == 2:  # insert a run
        i = rng.randrange(len(text) + 1)
        return text[:i] + "".join(rng.choices(ALPHABET, k=rng.randint(1, 6))) + text[i:]
    if op == 3:  # swap two characters
        i, j = rng.randrange(len(text)), rng.randrange(len(text))
        chars = list(text)
        chars[i], chars[j] = chars[j], chars[i]
        return "".join(chars)
    if op == 4:  # random text with the right prefix
        return envelope.PREFIX + "".join(rng.choices(ALPHABET, k=rng.randint(0, 400)))
    # byte-level mutations re-encoded as valid Base45, so they reach the CBOR/COSE layers
    data = bytearray(cose_bytes)
    if op == 5:  # flip bits
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif op == 6:  # set a byte
        data[rng.randrange(len(data))] = rng.randrange(256)
    elif op == 7:  # splice in random bytes
        i = rng.randrange(len(data))
        data[i:i] = rng.randbytes(rng.randint(1, 10))
    else:  # cut and duplicate
        i, j = sorted((rng.randrange(len(data)), rng.randrange(len(data))))
        data = data[:i] + data[j:] if rng.random() < 0.5 else data[:j] + data[i:]
    if bytes(data) == cose_bytes:
        return text  # the same signed bytes (e.g. a compressed permit sent bare): not a change
    return envelope.PREFIX + base45.encode(bytes(data))


_BATCH = 500
_BATCHES = 200  # 200 hypothesis examples x 500 mutations = 100,000 mutated payloads
_fuzz_tally: dict[str, int] = {}


@pytest.mark.slow
@settings(max_examples=_BATCHES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**64), which=st.sampled_from(["es256", "eddsa", "zlib"]))
def test_hypothesis_mutation_fuzz_100k(
    hostile: tuple[Sandbox, dict[str, str]], seed: int, which: str
) -> None:
    """Hypothesis picks seeds and permits; each example checks 500 mutations of a valid
    payload (text and byte level). Every one is refused with a reason, none raises
    anything else. Together: 100,000 mutated payloads per run."""
    sb, permits = hostile
    rng = random.Random(seed)
    text = permits[which]
    cose_bytes = envelope.unwrap(text)
    for _ in range(_BATCH):
        mutated = _mutate(rng, text, cose_bytes)
        if mutated == text:
            continue
        reason = _refusal(mutated, sb.store)
        _fuzz_tally[reason.value] = _fuzz_tally.get(reason.value, 0) + 1


def test_fuzz_reached_every_layer() -> None:
    """Runs after the fuzz test (file order): the mutations died at many layers."""
    if sum(_fuzz_tally.values()) < 0.99 * _BATCH * _BATCHES:
        pytest.skip("run together with test_hypothesis_mutation_fuzz_100k")
    for layer in ("bad_signature", "bad_cose", "bad_encoding", "malformed"):
        assert _fuzz_tally.get(layer, 0) > 100, _fuzz_tally


_cbor_leaf = st.one_of(
    st.integers(-(2**64), 2**64),
    st.binary(max_size=40),
    st.text(max_size=20),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=True),
)
_cbor = st.recursive(
    _cbor_leaf,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.integers(-20, 20) | st.text(max_size=4), inner, max_size=5)
    ),
    max_leaves=20,
)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=600) | st.binary(max_size=600))
def test_hypothesis_arbitrary_payloads(payload: str | bytes) -> None:
    store = _STORE()
    for raw in (payload, envelope.PREFIX + payload if isinstance(payload, str) else payload):
        _refusal(raw, store)
    if isinstance(payload, bytes) and payload:
        _refusal(envelope.PREFIX + base45.encode(b"\xd2" + payload), store)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header=_cbor, claims=_cbor, sig=st.binary(max_size=80))
def test_hypothesis_structured_cose(header: object, claims: object, sig: bytes) -> None:
    """Arbitrary CBOR headers/claims in a well-formed COSE_Sign1 shape: always refused."""
    store = _STORE()
    try:
        protected = cbor2.dumps(header)
        payload = cbor2.dumps(claims)
    except (ValueError, TypeError, OverflowError):
        return
    body = cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, sig]))
    _refusal(envelope.PREFIX + base45.encode(body), store)
    _refusal(envelope.PREFIX + base45.encode(zlib.compress(body, 9)), store)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_hypothesis_signed_hostile_claims(data: st.DataObject) -> None:
    """Even correctly signed, arbitrary claims never crash the verifier."""
    sb = _SB()
    key = sb.issuers["es256"]
    from verifier import canonical, cose

    claims = data.draw(_cbor)
    try:
        payload = canonical.dumps(claims)  # deterministic: only the profile can fail
        other = cbor2.dumps(claims)  # cbor2's own encoding may also break the encoding rule
    except (ValueError, TypeError, OverflowError):
        return
    raw = text_from_cose(cose.encode_sign1(payload, key.private, key.alg_id, key.kid))
    assert _refusal(raw, sb.store) == Reason.BAD_CLAIMS
    raw = text_from_cose(cose.encode_sign1(other, key.private, key.alg_id, key.kid))
    try:  # claims deeper than the limit cannot be decoded: bad_claims before any encoding rule
        canonical.loads(other, max_depth=4)
        decodable = True
    except canonical.CborInvalid:
        decodable = False
    except canonical.CborNonCanonical:
        decodable = True
    want = Reason.NON_CANONICAL if other != payload and decodable else Reason.BAD_CLAIMS
    assert _refusal(raw, sb.store) == want


_cache: dict[str, Sandbox] = {}


def _SB() -> Sandbox:
    if "sb" not in _cache:
        _cache["sb"] = Sandbox.create(seed="hypothesis")
    return _cache["sb"]


def _STORE() -> TrustStore:
    return _SB().store
