"""Issuing permits in batches: holders in, signed QR texts, PNG/SVG codes and a sheet out.

The signing itself is :func:`verifier.issue_permit`; this module turns CSV rows or a
count into requests, signs them with a progress callback, and writes the outputs:
``permits.jsonl`` (one JSON object per permit, payload included), ``qr/<ph>.png`` and
``qr/<ph>.svg`` (segno, error correction M), and ``sheet.html``, a printable page of
permit cards (one QR code each with the holder binding an attendant checks).
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from string import Template
from typing import Any

from central.errors import CentralError
from verifier.issue import IssuedPermit, issue_permit
from verifier.keys import SigningKey

MAX_BATCH = 1_000_000
#: A printable sheet is for paper permits; past this many the sheet is not written
#: (it would hold every record in memory and print thousands of pages).
MAX_SHEET = 5_000
CSV_COLUMNS = (
    "initials",
    "doc_number",
    "party",
    "gate_groups",
    "ptype",
    "site",
    "slot_start",
    "slot_end",
    "health",
    "route",
    "departure",
)


class IssueRequestInvalid(CentralError, ValueError):
    """A permit request (CLI arguments or a CSV row) cannot be issued as given."""


@dataclass(frozen=True, slots=True)
class PermitRequest:
    """What one permit should say; ``doc_number`` is hashed, never stored."""

    ptype: str
    site: str
    slot_start: int
    slot_end: int
    party: int = 1
    gate_groups: tuple[str, ...] = ("all",)
    initials: str = ""
    doc_number: str | None = None
    health: str = "ok"
    route: str | None = None
    departure: int | None = None
    #: SEC1 P-256 point of the holder's device key: a holder-bound permit (claim 8, cnf).
    holder_key: bytes | None = None


@dataclass(frozen=True, slots=True)
class IssuedRecord:
    """A signed permit with the request it came from (for outputs)."""

    request: PermitRequest
    permit: IssuedPermit

    def to_json(self) -> dict[str, Any]:
        r = self.request
        return {
            "payload": self.permit.text,
            "permit_id": self.permit.permit_id.hex(),
            "ph": self.permit.ph,
            "ptype": r.ptype,
            "site": r.site,
            "slot_start": r.slot_start,
            "slot_end": r.slot_end,
            "party": r.party,
            "gate_groups": list(r.gate_groups),
            "initials": r.initials,
            "route": r.route,
            "departure": r.departure,
            "holder_key": None if r.holder_key is None else r.holder_key.hex(),
        }


def _time(value: str, column: str, line: int) -> int:
    value = value.strip()
    try:
        if value.lstrip("-").isdigit():
            return int(value)
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise IssueRequestInvalid(
            f"line {line}: {column} {value!r} is not epoch seconds or ISO 8601"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp())


def read_holders_csv(
    text: str, defaults: PermitRequest, *, max_rows: int = MAX_BATCH
) -> list[PermitRequest]:
    """Requests from a CSV with a header row; any column of ``CSV_COLUMNS`` may be given,
    the rest come from ``defaults``. ``gate_groups`` separates groups with ``;``."""
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None:
        raise IssueRequestInvalid("holders CSV is empty; give a header row and one row per holder")
    unknown = set(reader.fieldnames) - set(CSV_COLUMNS)
    if unknown:
        raise IssueRequestInvalid(
            f"holders CSV has unknown columns {sorted(unknown)}; allowed: {', '.join(CSV_COLUMNS)}"
        )
    out: list[PermitRequest] = []
    for row in reader:
        line = reader.line_num
        if len(out) >= max_rows:
            raise IssueRequestInvalid(f"holders CSV has more than {max_rows} rows; split it")
        if None in row:
            raise IssueRequestInvalid(f"line {line}: more fields than header columns")
        changes: dict[str, Any] = {}
        for column, value in row.items():
            if value is None or value.strip() == "":
                continue
            value = value.strip()
            if column in ("slot_start", "slot_end", "departure"):
                changes[column] = _time(value, column, line)
            elif column == "party":
                if not value.isdigit():
                    raise IssueRequestInvalid(f"line {line}: party {value!r} is not a number")
                changes[column] = int(value)
            elif column == "gate_groups":
                changes[column] = tuple(g.strip() for g in value.split(";") if g.strip())
            else:
                changes[column] = value
        out.append(replace(defaults, **changes))
    return out


def read_holder_key(pem: bytes) -> bytes:
    """The compressed SEC1 point of a holder's P-256 public key (SPKI PEM, as the wallet
    exports it). Raises :class:`IssueRequestInvalid` for anything else."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise IssueRequestInvalid(
            "holder key is not a PEM public key (-----BEGIN PUBLIC KEY-----)"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise IssueRequestInvalid("holder key must be a P-256 (ECDSA secp256r1) public key")
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )


def issue_batch(
    key: SigningKey,
    *,
    issuer: str,
    issued_at: int,
    requests: Iterable[PermitRequest],
    progress: Callable[[int], object] | None = None,
) -> Iterator[IssuedRecord]:
    """Sign each request; ``progress(1)`` after each. Raises :class:`IssueRequestInvalid`."""
    for n, req in enumerate(requests, 1):
        try:
            permit = issue_permit(
                key,
                issuer=issuer,
                issued_at=issued_at,
                ptype=req.ptype,
                site=req.site,
                slot=(req.slot_start, req.slot_end),
                party=req.party,
                gate_groups=req.gate_groups,
                initials=req.initials,
                doc_number=req.doc_number,
                health=req.health,
                route=req.route,
                departure=req.departure,
                holder_key=req.holder_key,
            )
        except ValueError as exc:
            raise IssueRequestInvalid(f"permit {n}: {exc}") from None
        if progress is not None:
            progress(1)
        yield IssuedRecord(req, permit)


def write_qr(record: IssuedRecord, directory: Path, *, png: bool, svg: bool) -> None:
    """``<ph>.png`` / ``<ph>.svg`` for one permit, error correction M."""
    import segno

    if not (png or svg):
        return
    qr = segno.make(record.permit.text, error="m", micro=False, boost_error=False)
    directory.mkdir(parents=True, exist_ok=True)
    if png:
        qr.save(str(directory / f"{record.permit.ph}.png"), scale=4, border=4)
    if svg:
        qr.save(str(directory / f"{record.permit.ph}.svg"), scale=4, border=4)


def _when(t: int | None) -> str:
    if t is None:
        return ""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")


def render_sheet(records: Iterable[IssuedRecord], *, title: str = "gatepass permits") -> str:
    """A printable HTML page: one card per permit with an inline SVG QR code."""
    import segno

    template = Template((Path(__file__).parent / "templates" / "sheet.html").read_text())
    cards = []
    for rec in records:
        r = rec.request
        buf = io.BytesIO()
        segno.make(rec.permit.text, error="m", micro=False, boost_error=False).save(
            buf, kind="svg", scale=3, border=4, xmldecl=False, svgns=True
        )
        rows = [
            ("Type", r.ptype),
            ("Site", r.site),
            ("Gates", ", ".join(r.gate_groups)),
            ("Slot", f"{_when(r.slot_start)} – {_when(r.slot_end)[11:]}"),
            ("Party", str(r.party)),
            ("Holder", f"{r.initials} …{(r.doc_number or '')[-4:]}".strip()),
        ]
        if r.route:
            rows.append(("Route", r.route))
        if r.departure is not None:
            rows.append(("Departure", _when(r.departure)))
        if r.holder_key is not None:  # a printed copy alone is refused where gates require it
            rows.append(("Phone", "bound: show the live code from the holder's phone"))
        details = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in rows)
        cards.append(
            f'<article class="card"><div class="qr">{buf.getvalue().decode()}</div>'
            f'<dl>{details}</dl><p class="ph">{rec.permit.ph}</p></article>'
        )
    return template.substitute(title=html.escape(title), cards="\n".join(cards))


def write_outputs(
    records: Iterable[IssuedRecord],
    out: Path,
    *,
    png: bool = True,
    svg: bool = True,
    sheet: bool = True,
) -> int:
    """Write ``permits.jsonl``, QR images and ``sheet.html`` under ``out``; return the count."""
    out.mkdir(parents=True, exist_ok=True)
    kept: list[IssuedRecord] = []
    count = 0
    with (out / "permits.jsonl").open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec.to_json()) + "\n")
            write_qr(rec, out / "qr", png=png, svg=svg)
            if sheet:
                kept.append(rec)
            count += 1
    if sheet:
        (out / "sheet.html").write_text(render_sheet(kept), encoding="utf-8")
    return count
