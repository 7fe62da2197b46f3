"""Wire payloads of the gatepass MQTT protocol (version :data:`WIRE_VERSION`).

Compact UTF-8 JSON. Every decoder takes untrusted bytes and either returns
validated values or raises :class:`~sync.errors.WireError` with a one-line reason:
size is checked before parsing, duplicate keys, NaN/Infinity, deep nesting, unknown
keys and a gate id that differs from the topic's gate are all refused. A refused
batch is refused whole (never partly applied), so the centre does not acknowledge
it and nothing is silently dropped.

- event batch ``{"v":1,"gate":G,"groups":[...]?,"inc":I?,"events":[GateEvent.to_dict(), ...],
  "sig":S?}``; ``sig`` (base64url, no padding) is the gate's detached signature over the
  exact bytes before ``,"sig":"`` (see :func:`verifier.registry.sign_batch`), and is last
- ack ``{"v":1,"gate":G,"seq":N,"first":F,"digest":D,"inc":I?}``: ``N`` is the highest
  contiguous seq the centre has stored; ``D`` is :func:`eid_digest` of the event ids the
  centre STORED at seqs ``F..N``. A gate deletes a row only when its own ids for ``F..N``
  give ``D`` (an ack without them deletes nothing)
- status ``{"v":1,"gate":G,"state":"online"|"offline","t":T}``
- health ``{"v":1,"gate":G,"t":T, "backlog":N, "clock":..., ...}``

``inc`` (an incarnation id, reserved for a later version) is accepted as an id and
passed through; nothing depends on it yet.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sync.errors import TopicError, WireError
from sync.schema import EventInvalid, GateEvent
from sync.topics import ID_RE, check_id

WIRE_VERSION: Final = 1
MAX_BATCH_EVENTS: Final = 500
MAX_BATCH_BYTES: Final = 256 * 1024
MAX_SMALL_BYTES: Final = 4096  # ack, status and health documents
MAX_SEQ: Final = 2**62
STATES: Final = frozenset({"online", "offline"})
MAX_HEALTH_KEYS: Final = 32
MAX_GROUPS: Final = 64
SIG_MARK: Final = b',"sig":"'
MAX_SIG_CHARS: Final = 128  # base64url of a 64-byte ES256/Ed25519 signature is 86
#: Room kept in a batch for the signature member.
SIG_ROOM: Final = len(SIG_MARK) + MAX_SIG_CHARS + 2
_HEX64: Final = re.compile(r"[0-9a-f]{64}")

#: ``signer(batch_bytes) -> signature``: the gate's batch signer (raw signature bytes).
Signer = Callable[[bytes], bytes]


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _no_dup_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d: dict[str, Any] = {}
    for k, v in pairs:
        if k in d:
            raise WireError(f"duplicate key {k[:40]!r}")
        d[k] = v
    return d


def _no_constants(name: str) -> Any:
    raise WireError(f"non-finite number {name} in payload")


def _loads(payload: bytes, limit: int, what: str) -> dict[str, Any]:
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise WireError(f"{what} payload must be bytes, not {type(payload).__name__}")
    if len(payload) == 0:
        raise WireError(f"{what} payload is empty")
    if len(payload) > limit:
        raise WireError(f"{what} payload of {len(payload)} bytes exceeds {limit}")
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WireError(f"{what} payload is not UTF-8 (byte {exc.start})") from None
    try:
        doc = json.loads(text, object_pairs_hook=_no_dup_keys, parse_constant=_no_constants)
    except WireError:
        raise
    except RecursionError:
        raise WireError(f"{what} payload is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, or int too long to convert
        raise WireError(f"{what} payload is not valid JSON: {str(exc)[:80]}") from None
    if not isinstance(doc, dict):
        raise WireError(f"{what} payload must be a JSON object")
    return doc


def _header(doc: dict[str, Any], topic_gate: str, keys: frozenset[str], what: str) -> None:
    unknown = set(doc) - keys
    if unknown:
        raise WireError(f"{what} has unknown keys {sorted(k[:40] for k in unknown)[:5]}")
    if doc.get("v") != WIRE_VERSION or isinstance(doc.get("v"), bool):
        raise WireError(f"unsupported {what} version {str(doc.get('v'))[:20]!r}")
    gate = doc.get("gate")
    if not isinstance(gate, str) or not ID_RE.match(gate):
        raise WireError(f"{what} gate id is missing or invalid")
    if gate != topic_gate:
        raise WireError(f"{what} gate {gate!r} does not match topic gate {topic_gate[:64]!r}")


def _time(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise WireError(f"{what} t must be a finite number")
    return float(v)


def _topic_gate(topic_gate: str) -> str:
    try:
        return check_id(topic_gate, "topic gate")
    except TopicError as exc:
        raise WireError(str(exc)) from None


# --- event batches -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Batch:
    """A decoded batch: its events, the gate's claims and the signature over ``signed``."""

    gate: str
    events: list[GateEvent]
    groups: tuple[str, ...] | None  # the gate groups the gate says it serves (None: not said)
    inc: str | None
    signed: bytes  # the exact bytes the signature covers
    sig: bytes | None


def _b64(sig: bytes) -> bytes:
    return base64.urlsafe_b64encode(sig).rstrip(b"=")


def _unb64(text: str) -> bytes:
    if not 0 < len(text) <= MAX_SIG_CHARS or "=" in text:
        raise WireError("batch sig must be unpadded base64url of at most "
                        f"{MAX_SIG_CHARS} characters")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise WireError("batch sig is not base64url") from None


def _groups(groups: Iterable[str] | None) -> list[str] | None:
    if groups is None:
        return None
    out = sorted(set(groups))
    if len(out) > MAX_GROUPS or not all(isinstance(g, str) and ID_RE.match(g) for g in out):
        raise WireError(f"batch groups must be at most {MAX_GROUPS} ids")
    return out


def _batch_head(gate: str, groups: Iterable[str] | None, inc: str | None) -> bytes:
    check_id(gate, "gate")
    doc: dict[str, Any] = {"v": WIRE_VERSION, "gate": gate}
    g = _groups(groups)
    if g is not None:
        doc["groups"] = g
    if inc is not None:
        doc["inc"] = check_id(inc, "incarnation")
    doc["events"] = []
    return _dumps(doc)[:-2]  # ...,"events":[


def _close(signed_part: bytes, signer: Signer | None) -> bytes:
    """``signed_part`` ends with the events list's ``]``; add the signature and the ``}``."""
    if signer is None:
        return signed_part + b"}"
    sig = _b64(signer(signed_part))
    if len(sig) > MAX_SIG_CHARS:
        raise WireError(f"batch signature longer than {MAX_SIG_CHARS} characters")
    return signed_part + SIG_MARK + sig + b'"}'


def encode_batch(gate: str, events: Sequence[GateEvent], *, signer: Signer | None = None,
                 groups: Iterable[str] | None = None, inc: str | None = None) -> bytes:
    """One batch message for ``gp/v1/gates/{gate}/events``; raise WireError if it cannot go."""
    check_id(gate, "gate")
    if not events:
        raise WireError("a batch needs at least one event")
    if len(events) > MAX_BATCH_EVENTS:
        raise WireError(f"batch of {len(events)} events exceeds {MAX_BATCH_EVENTS}")
    for ev in events:
        if ev.gate != gate:
            raise WireError(f"event seq {ev.seq} belongs to gate {ev.gate!r}, not {gate!r}")
    head = _batch_head(gate, groups, inc)
    raw = _close(head + b",".join(_dumps(ev.to_dict()) for ev in events) + b"]", signer)
    if len(raw) > MAX_BATCH_BYTES:
        raise WireError(f"batch of {len(raw)} bytes exceeds {MAX_BATCH_BYTES}")
    return raw


def encode_batches(gate: str, events: Sequence[GateEvent],
                   max_events: int = MAX_BATCH_EVENTS, *, signer: Signer | None = None,
                   groups: Iterable[str] | None = None) -> list[tuple[int, int, bytes]]:
    """Split ``events`` into messages within both limits: ``[(first_seq, last_seq, payload)]``."""
    max_events = max(1, min(max_events, MAX_BATCH_EVENTS))
    out: list[tuple[int, int, bytes]] = []
    i = 0
    while i < len(events):
        n = min(max_events, len(events) - i)
        while True:
            chunk = events[i:i + n]
            try:
                raw = encode_batch(gate, chunk, signer=signer, groups=groups)
                break
            except WireError:
                if n == 1:
                    raise
                n = max(1, n // 2)  # too many bytes: halve until it fits
        out.append((chunk[0].seq, chunk[-1].seq, raw))
        i += n
    return out


def encode_raw_batches(gate: str, rows: Sequence[tuple[int, str]],
                       max_events: int = MAX_BATCH_EVENTS, *, signer: Signer | None = None,
                       groups: Iterable[str] | None = None, inc: str | None = None,
                       ) -> list[tuple[int, int, bytes]]:
    """Batch already-encoded event bodies (``(seq, GateEvent.to_dict() as JSON)``) as stored
    by the outbox: ``[(first_seq, last_seq, payload)]``, each within both limits, each
    signed by ``signer`` when given (one signature per batch, never per event)."""
    max_events = max(1, min(max_events, MAX_BATCH_EVENTS))
    head = _batch_head(gate, groups, inc)
    room = SIG_ROOM if signer is not None else 2
    limit = MAX_BATCH_BYTES - room
    out: list[tuple[int, int, bytes]] = []
    chunk: list[bytes] = []
    first = last = 0
    size = len(head) + 1
    for seq, body in rows:
        b = body.encode()
        if len(head) + len(b) + 1 > limit:
            raise WireError(f"event seq {seq} alone exceeds {MAX_BATCH_BYTES} bytes")
        if chunk and (len(chunk) >= max_events or size + len(b) + 1 > limit):
            out.append((first, last, _close(head + b",".join(chunk) + b"]", signer)))
            chunk, size = [], len(head) + 1
        if not chunk:
            first = seq
        chunk.append(b)
        size += len(b) + (1 if len(chunk) > 1 else 0)
        last = seq
    if chunk:
        out.append((first, last, _close(head + b",".join(chunk) + b"]", signer)))
    return out


def decode_batch(payload: bytes, topic_gate: str) -> list[GateEvent]:
    """Validate a batch received on ``gp/v1/gates/{topic_gate}/events``; all or nothing."""
    return decode_signed_batch(payload, topic_gate).events


def decode_signed_batch(payload: bytes, topic_gate: str) -> Batch:
    """Like :func:`decode_batch`, with the gate's claims, the signature and the signed bytes.

    Checks the shape of ``sig`` only; whether it verifies is the caller's business (the
    centre checks it with the key its gate registry names for the gate).
    """
    topic_gate = _topic_gate(topic_gate)
    doc = _loads(payload, MAX_BATCH_BYTES, "batch")
    _header(doc, topic_gate, frozenset({"v", "gate", "groups", "inc", "events", "sig"}),
            "batch")
    raw = bytes(payload)
    sig: bytes | None = None
    if "sig" in doc:
        text = doc["sig"]
        if not isinstance(text, str):
            raise WireError("batch sig must be a string")
        at = raw.rfind(SIG_MARK)
        if at < 0 or raw[at:] != SIG_MARK + text.encode() + b'"}':
            raise WireError("batch sig must be the last member, written compactly")
        sig, signed = _unb64(text), raw[:at]
    else:
        signed = raw[:-1] if raw.endswith(b"}") else raw
    groups: tuple[str, ...] | None = None
    if "groups" in doc:
        g = doc["groups"]
        if (not isinstance(g, list) or len(g) > MAX_GROUPS
                or not all(isinstance(x, str) and ID_RE.match(x) for x in g)
                or g != sorted(set(g))):
            raise WireError("batch groups must be a sorted list of unique ids")
        groups = tuple(g)
    inc = doc.get("inc")
    if inc is not None and (not isinstance(inc, str) or not ID_RE.match(inc)):
        raise WireError("batch inc must be an id")
    items = doc.get("events")
    if not isinstance(items, list) or not items:
        raise WireError("batch events must be a non-empty list")
    if len(items) > MAX_BATCH_EVENTS:
        raise WireError(f"batch of {len(items)} events exceeds {MAX_BATCH_EVENTS}")
    out: list[GateEvent] = []
    seen: set[int] = set()
    for n, item in enumerate(items):
        try:
            ev = GateEvent.from_dict(item)
        except EventInvalid as exc:
            raise WireError(f"batch event #{n}: {exc}") from None
        except (TypeError, ValueError) as exc:  # belt and braces against odd shapes
            raise WireError(f"batch event #{n}: {str(exc)[:80]}") from None
        if ev.gate != topic_gate:
            raise WireError(f"batch event #{n} gate {ev.gate!r} does not match topic gate")
        if ev.seq in seen:
            raise WireError(f"batch event #{n} repeats seq {ev.seq}")
        seen.add(ev.seq)
        out.append(ev)
    return Batch(topic_gate, out, groups, inc, signed, sig)


# --- acknowledgements ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ack:
    """The centre's acknowledgement: ``seq`` is the highest contiguous stored seq; ``digest``
    (:func:`eid_digest`) names the event ids stored at ``first..seq`` (empty when first > seq).
    ``first``/``digest`` None: an ack that names nothing, so it deletes nothing."""

    gate: str
    seq: int
    first: int | None = None
    digest: str | None = None
    inc: str | None = None

    def names(self) -> bool:
        return self.first is not None and self.digest is not None and self.first <= self.seq


def eid_digest(eids: Iterable[str]) -> str:
    """SHA-256 (hex) over the concatenated event ids (32 hex digits each), in seq order."""
    h = hashlib.sha256()
    for e in eids:
        h.update(e.encode("ascii"))
    return h.hexdigest()


def _seq(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_SEQ:
        raise WireError(f"ack {what} must be an integer in [0, {MAX_SEQ}]")
    return v


def encode_ack(gate: str, seq: int, first: int | None = None, digest: str | None = None,
               *, inc: str | None = None) -> bytes:
    """Retained ack for ``gp/v1/gates/{gate}/ack``: every seq <= ``seq`` is stored centrally,
    and the ids stored at ``first..seq`` hash to ``digest``."""
    check_id(gate, "gate")
    doc: dict[str, Any] = {"v": WIRE_VERSION, "gate": gate, "seq": _seq(seq, "seq")}
    if (first is None) != (digest is None):
        raise WireError("ack first and digest go together")
    if first is not None and digest is not None:
        doc["first"] = _seq(first, "first")
        if not _HEX64.fullmatch(digest):
            raise WireError("ack digest must be 64 hex digits")
        doc["digest"] = digest
    if inc is not None:
        doc["inc"] = check_id(inc, "incarnation")
    return _dumps(doc)


def decode_ack(payload: bytes, topic_gate: str) -> Ack:
    """The ack on ``gp/v1/gates/{topic_gate}/ack``."""
    topic_gate = _topic_gate(topic_gate)
    doc = _loads(payload, MAX_SMALL_BYTES, "ack")
    _header(doc, topic_gate, frozenset({"v", "gate", "seq", "first", "digest", "inc"}), "ack")
    seq = _seq(doc.get("seq"), "seq")
    first = doc.get("first")
    digest = doc.get("digest")
    if (first is None) != (digest is None):
        raise WireError("ack first and digest go together")
    if first is not None:
        first = _seq(first, "first")
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            raise WireError("ack digest must be 64 hex digits")
    inc = doc.get("inc")
    if inc is not None and (not isinstance(inc, str) or not ID_RE.match(inc)):
        raise WireError("ack inc must be an id")
    return Ack(topic_gate, seq, first, digest, inc)


# --- status and health ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Status:
    """A gate's retained online/offline status."""

    gate: str
    state: str
    t: float | None


def encode_status(gate: str, state: str, t: float | None) -> bytes:
    """Retained status; ``t`` may be None for the Last Will (set before the outage is known)."""
    check_id(gate, "gate")
    if state not in STATES:
        raise WireError(f"status state must be one of {sorted(STATES)}")
    doc: dict[str, Any] = {"v": WIRE_VERSION, "gate": gate, "state": state}
    if t is not None:
        doc["t"] = _time(t, "status")
    return _dumps(doc)


def decode_status(payload: bytes, topic_gate: str) -> Status:
    topic_gate = _topic_gate(topic_gate)
    doc = _loads(payload, MAX_SMALL_BYTES, "status")
    _header(doc, topic_gate, frozenset({"v", "gate", "state", "t"}), "status")
    state = doc.get("state")
    if state not in STATES:
        raise WireError(f"status state must be one of {sorted(STATES)}")
    t = _time(doc["t"], "status") if "t" in doc else None
    return Status(gate=topic_gate, state=str(state), t=t)


def _health_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    if len(fields) > MAX_HEALTH_KEYS:
        raise WireError(f"health has more than {MAX_HEALTH_KEYS} fields")
    out: dict[str, Any] = {}
    for k, v in fields.items():
        if not isinstance(k, str) or not ID_RE.match(k) or k in ("v", "gate"):
            raise WireError(f"health field name {str(k)[:40]!r} is invalid")
        if isinstance(v, float) and not math.isfinite(v):
            raise WireError(f"health field {k} is not finite")
        if v is not None and not isinstance(v, (bool, int, float, str)):
            raise WireError(f"health field {k} must be a scalar")
        if isinstance(v, str) and len(v) > 200:
            raise WireError(f"health field {k} is longer than 200 characters")
        out[k] = v
    return out


def encode_health(gate: str, t: float, fields: Mapping[str, Any]) -> bytes:
    """Retained health document: scalar fields (backlog, clock, last_verdict_t, fps...)."""
    check_id(gate, "gate")
    doc: dict[str, Any] = {"v": WIRE_VERSION, "gate": gate, **_health_fields(fields)}
    doc["t"] = _time(t, "health")
    raw = _dumps(doc)
    if len(raw) > MAX_SMALL_BYTES:
        raise WireError(f"health of {len(raw)} bytes exceeds {MAX_SMALL_BYTES}")
    return raw


def decode_health(payload: bytes, topic_gate: str) -> dict[str, Any]:
    """Return the health fields (``t`` included, ``v``/``gate`` removed)."""
    topic_gate = _topic_gate(topic_gate)
    doc = _loads(payload, MAX_SMALL_BYTES, "health")
    _header(doc, topic_gate, frozenset(doc), "health")
    body = {k: v for k, v in doc.items() if k not in ("v", "gate")}
    fields = _health_fields(body)
    if "t" not in fields:
        raise WireError("health t is missing")
    fields["t"] = _time(fields["t"], "health")
    return fields


def seqs(events: Iterable[GateEvent]) -> list[int]:
    """The seq numbers of ``events``, in order (handy for acks and logs)."""
    return [ev.seq for ev in events]
