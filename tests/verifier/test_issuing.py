"""central.issuing: CSV requests, batch signing, and the printable sheet (no subprocess)."""

from __future__ import annotations

from pathlib import Path

import pytest

from central.issuing import (
    IssueRequestInvalid,
    PermitRequest,
    issue_batch,
    read_holders_csv,
    render_sheet,
    write_outputs,
)
from verifier import verify_at
from verifier.sandbox import Sandbox

DEFAULTS = PermitRequest(
    ptype="umrah", site="makkah-haram", slot_start=1_780_000_000, slot_end=1_780_003_600
)


def test_csv_defaults_and_overrides() -> None:
    rows = read_holders_csv(
        "initials,doc_number,slot_start,slot_end,departure,route,ptype\n"
        "AB,P1,2026-05-28T20:26:40Z,1780007200,,,\n"
        ",,,,1780001000,haram-mina-3,bus\n",
        DEFAULTS,
    )
    assert rows[0].initials == "AB" and rows[0].slot_start == 1_780_000_000
    assert rows[0].slot_end == 1_780_007_200 and rows[0].ptype == "umrah"
    assert rows[1].initials == "" and rows[1].route == "haram-mina-3"
    assert rows[1].departure == 1_780_001_000 and rows[1].ptype == "bus"


def test_csv_row_limit() -> None:
    with pytest.raises(IssueRequestInvalid, match="more than 2 rows"):
        read_holders_csv("initials\nA\nB\nC\n", DEFAULTS, max_rows=2)


def test_batch_signs_and_reports_progress(tmp_path: Path) -> None:
    sb = Sandbox.create(sites=("makkah-haram",), seed="issuing")
    ticks: list[int] = []
    records = list(
        issue_batch(
            sb.issuers["es256"],
            issuer="moh",
            issued_at=1_779_990_000,
            requests=[DEFAULTS] * 5,
            progress=ticks.append,
        )
    )
    assert len(ticks) == 5 and len({r.permit.permit_id for r in records}) == 5
    for r in records:
        assert verify_at(r.permit.text, 1_780_000_100, trust=sb.store).ph == r.permit.ph
    n = write_outputs(records, tmp_path, png=False, svg=True, sheet=True)
    assert n == 5 and not list((tmp_path / "qr").glob("*.png"))
    assert len(list((tmp_path / "qr").glob("*.svg"))) == 5


def test_bad_request_names_the_permit() -> None:
    sb = Sandbox.create(seed="issuing-bad")
    bad = PermitRequest(ptype="umrah", site="no spaces allowed", slot_start=1, slot_end=2)
    with pytest.raises(IssueRequestInvalid, match="permit 2"):
        list(issue_batch(sb.issuers["es256"], issuer="moh", issued_at=0, requests=[DEFAULTS, bad]))


def test_sheet_escapes_and_hides_the_document_number() -> None:
    sb = Sandbox.create(seed="sheet")
    req = PermitRequest(
        ptype="umrah",
        site="makkah-haram",
        slot_start=1_780_000_000,
        slot_end=1_780_003_600,
        initials="AB",
        doc_number="P99887766",
    )
    rec = next(issue_batch(sb.issuers["es256"], issuer="moh", issued_at=0, requests=[req]))
    page = render_sheet([rec], title="<b>Gate</b>")
    assert "&lt;b&gt;Gate&lt;/b&gt;" in page and "<b>Gate</b>" not in page
    assert "P99887766" not in page and "…7766" in page
