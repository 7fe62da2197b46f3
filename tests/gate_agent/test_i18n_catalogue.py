"""The message catalogue: complete for every reason a gate can show, rtl where it should be."""

from __future__ import annotations

import json
import logging
from importlib import resources

import pytest

from gate_agent import i18n
from gate_agent.console.backend import OVERRIDE_REASONS
from gate_agent.reasons import GateReason, Verdict
from verifier.errors import Reason

REFUSALS = sorted({r.value for r in Reason} | {r.value for r in GateReason})
VERDICTS = sorted(v.value for v in Verdict)
SHOWN = REFUSALS + [v for v in VERDICTS if v not in REFUSALS]


@pytest.mark.parametrize("lang", i18n.ATTENDANT_LANGS)
def test_attendant_lines_complete(lang: str) -> None:
    lines = i18n.catalogue(lang).attendant
    missing = [c for c in [*SHOWN, *OVERRIDE_REASONS] if not lines.get(c, "").strip()]
    assert missing == [], f"{lang}: no attendant line for {missing}"


@pytest.mark.parametrize("lang", i18n.PILGRIM_LANGS)
def test_pilgrim_lines_complete(lang: str) -> None:
    lines = i18n.catalogue(lang).pilgrim
    missing = [c for c in SHOWN if not lines.get(c, "").strip()]
    assert missing == [], f"{lang}: no pilgrim line for {missing}"


@pytest.mark.parametrize("lang", i18n.PILGRIM_LANGS)
def test_lines_are_in_their_language(lang: str) -> None:
    """A copy-pasted English line in another catalogue is a missing translation."""
    if lang == "en":
        return
    en = i18n.catalogue("en")
    cat = i18n.catalogue(lang)
    for audience in i18n.AUDIENCES:
        same = [c for c, t in cat.lines(audience).items() if en.lines(audience).get(c) == t]
        assert same == [], f"{lang}/{audience} lines identical to English: {same}"


def test_no_unknown_codes_in_any_catalogue() -> None:
    """Catch typos: a line for a code nobody emits would never be shown."""
    known = set(SHOWN) | set(OVERRIDE_REASONS)
    for lang in i18n.languages():
        cat = i18n.catalogue(lang)
        for audience in i18n.AUDIENCES:
            unknown = set(cat.lines(audience)) - known
            assert not unknown, f"{lang}/{audience}: unknown codes {sorted(unknown)}"


def test_ui_labels_complete_for_console_languages() -> None:
    en_keys = set(i18n.catalogue("en").ui)
    assert {"verdict_admit", "verdict_deny", "banner_untrusted", "reason_required"} <= en_keys
    for lang in i18n.ATTENDANT_LANGS:
        assert set(i18n.catalogue(lang).ui) == en_keys, lang


@pytest.mark.parametrize("lang", i18n.PILGRIM_LANGS)
def test_direction(lang: str) -> None:
    m = i18n.message("expired", lang, "pilgrim")
    assert m.lang == lang
    assert m.dir == ("rtl" if lang in {"ar", "ur", "fa"} else "ltr")


def test_catalogue_files_are_plain_json_named_by_language() -> None:
    root = resources.files("gate_agent.i18n").joinpath("catalogue")
    names = sorted(p.name for p in root.iterdir() if p.name.endswith(".json"))
    assert len(names) >= len(i18n.PILGRIM_LANGS)
    for name in names:
        data = json.loads(root.joinpath(name).read_text(encoding="utf-8"))
        assert data["lang"] == name.removesuffix(".json")


def test_missing_line_falls_back_to_english_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Urdu has pilgrim lines only: its attendant lines must come from English.
    with caplog.at_level(logging.WARNING, logger="gate_agent.i18n"):
        m = i18n.message("revoked", "ur", "attendant")
    assert m == i18n.message("revoked", "en", "attendant")
    assert m.dir == "ltr"
    assert any("ur/attendant/revoked" in r.getMessage() for r in caplog.records)


def test_unknown_language_and_code_never_raise(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="gate_agent.i18n"):
        assert i18n.message("admit", "xx", "pilgrim").lang == "en"
        assert i18n.message("no_such_code_zz", "ar", "pilgrim").text == "no_such_code_zz"
        assert i18n.message("expired", "../en", "pilgrim").lang == "en"
    assert len(caplog.records) >= 3
    with pytest.raises(i18n.CatalogueError):
        i18n.catalogue("../../etc/passwd")
    with pytest.raises(ValueError, match="audience"):
        i18n.message("admit", "en", "crowd")  # type: ignore[arg-type]


def test_decision_messages_tell_the_pilgrim_only_what_is_theirs() -> None:
    refused = i18n.decision_messages("deny", "wrong_gate_group", "en", "fr")
    assert refused["attendant"] == i18n.message("wrong_gate_group", "en", "attendant")
    assert refused["pilgrim"] == i18n.message("wrong_gate_group", "fr", "pilgrim")
    # An override's reason is staff business: the pilgrim hears the verdict line.
    overridden = i18n.decision_messages("deny", "security_concern", "ar", "ur")
    assert overridden["attendant"].text == i18n.catalogue("ar").attendant["security_concern"]
    assert overridden["pilgrim"] == i18n.message("deny", "ur", "pilgrim")
    welcome = i18n.decision_messages("admit", "medical", "en", "id")
    assert welcome["pilgrim"] == i18n.message("admit", "id", "pilgrim")
