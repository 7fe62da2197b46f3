"""Messages for the attendant and the pilgrim, per reason code and verdict, per language.

The catalogue is data: one JSON file per language in ``catalogue/`` (package data)::

    {"lang": "ar", "name": "العربية", "dir": "rtl",
     "attendant": {code: text}, "pilgrim": {code: text}, "ui": {key: text}}

Codes are :class:`verifier.errors.Reason` and :class:`gate_agent.reasons.GateReason`
values, the verdicts (``admit``, ``deny``, ``inspect``, ``untrusted_time``) and the
console's override reasons. A missing line falls back to English, with a warning logged
once per (lang, audience, code), so a gate never shows an empty message.

Required coverage (checked by the tests): attendant lines in :data:`ATTENDANT_LANGS`,
pilgrim lines in :data:`PILGRIM_LANGS`.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final, Literal

from verifier.errors import GatepassError

log = logging.getLogger(__name__)

Audience = Literal["attendant", "pilgrim"]
AUDIENCES: Final = ("attendant", "pilgrim")
FALLBACK: Final = "en"
ATTENDANT_LANGS: Final = ("en", "ar")
PILGRIM_LANGS: Final = ("en", "ar", "ur", "id", "bn", "tr", "fr", "ms", "fa")
RTL_LANGS: Final = frozenset({"ar", "ur", "fa"})
VERDICT_CODES: Final = ("admit", "deny", "inspect", "untrusted_time")

_warned: set[tuple[str, str, str]] = set()
_warned_lock = threading.Lock()


class CatalogueError(GatepassError, ValueError):
    """A catalogue file is missing or malformed, or a language code is unusable."""


@dataclass(frozen=True, slots=True)
class Message:
    """One line to show: its text, the language it is really in, and its direction."""

    text: str
    lang: str
    dir: Literal["ltr", "rtl"]


@dataclass(frozen=True, slots=True)
class Catalogue:
    """All lines of one language."""

    lang: str
    name: str
    dir: Literal["ltr", "rtl"]
    attendant: dict[str, str]
    pilgrim: dict[str, str]
    ui: dict[str, str]

    def lines(self, audience: Audience) -> dict[str, str]:
        return self.attendant if audience == "attendant" else self.pilgrim

    def to_json(self) -> dict[str, Any]:
        return {
            "lang": self.lang,
            "name": self.name,
            "dir": self.dir,
            "attendant": dict(self.attendant),
            "pilgrim": dict(self.pilgrim),
            "ui": dict(self.ui),
        }


def _str_map(raw: Any, where: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in raw.items()
    ):
        raise CatalogueError(f"{where} must map codes to non-empty strings")
    return dict(raw)


def _valid_lang(lang: str) -> bool:
    return 2 <= len(lang) <= 8 and lang.isascii() and lang.isalpha() and lang.islower()


@cache
def languages() -> tuple[str, ...]:
    """The language codes that have a catalogue file, sorted."""
    root = resources.files(__package__).joinpath("catalogue")
    return tuple(
        sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".json"))
    )


@cache
def catalogue(lang: str) -> Catalogue:
    """Load (once) the catalogue of ``lang``; :class:`CatalogueError` if there is none."""
    if not _valid_lang(lang) or lang not in languages():
        raise CatalogueError(f"no message catalogue for language {lang!r}")
    path = resources.files(__package__).joinpath("catalogue", f"{lang}.json")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CatalogueError(f"cannot read catalogue {lang}.json: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("lang") != lang:
        raise CatalogueError(f"{lang}.json must be a map whose 'lang' is {lang!r}")
    direction = raw.get("dir", "rtl" if lang in RTL_LANGS else "ltr")
    if direction not in ("ltr", "rtl"):
        raise CatalogueError(f"{lang}.json: dir must be 'ltr' or 'rtl'")
    name = raw.get("name", lang)
    if not isinstance(name, str):
        raise CatalogueError(f"{lang}.json: name must be a string")
    return Catalogue(
        lang=lang,
        name=name,
        dir=direction,
        attendant=_str_map(raw.get("attendant"), f"{lang}.json attendant"),
        pilgrim=_str_map(raw.get("pilgrim"), f"{lang}.json pilgrim"),
        ui=_str_map(raw.get("ui"), f"{lang}.json ui"),
    )


def _warn_once(lang: str, audience: str, code: str, what: str) -> None:
    key = (lang, audience, code)
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    log.warning("message catalogue: %s for %s/%s/%s", what, lang, audience, code)


def message(code: str, lang: str, audience: Audience = "attendant") -> Message:
    """The line for ``code`` in ``lang`` for ``audience``, falling back to English.

    Never raises for an unknown language or code: the gate must always say something.
    An unknown code yields the code itself (in English) so the attendant can report it.
    """
    if audience not in AUDIENCES:
        raise CatalogueError(f"audience must be one of {AUDIENCES}, not {audience!r}")
    try:
        cat: Catalogue | None = catalogue(lang)
    except CatalogueError:
        _warn_once(lang, audience, code, "no catalogue for this language")
        cat = None
    if cat is not None:
        text = cat.lines(audience).get(code)
        if text is not None:
            return Message(text, cat.lang, cat.dir)
        _warn_once(lang, audience, code, "missing line, using English")
    en = catalogue(FALLBACK)
    text = en.lines(audience).get(code)
    if text is None:
        _warn_once(FALLBACK, audience, code, "unknown code")
        text = code
    return Message(text, en.lang, en.dir)


def ui_strings(lang: str) -> dict[str, str]:
    """Console labels for ``lang``, English for any label it lacks."""
    merged = dict(catalogue(FALLBACK).ui)
    try:
        merged.update(catalogue(lang).ui)
    except CatalogueError:
        _warn_once(lang, "ui", "*", "no catalogue for this language")
    return merged


def decision_messages(
    verdict: str, reason: str | None, attendant_lang: str, pilgrim_lang: str
) -> dict[str, Message]:
    """The attendant and pilgrim lines for one decision.

    The attendant reads the precise reason; the pilgrim is told the reason when there is a
    pilgrim line for it (policy refusals), otherwise the verdict's line (e.g. an override's
    reason code is staff business: the pilgrim only hears "welcome" or "please see...").
    """
    att_code = reason or verdict
    if verdict == "admit":
        pil_code = "admit"
    elif reason is not None and reason in catalogue(FALLBACK).pilgrim:
        pil_code = reason
    else:
        pil_code = verdict
    return {
        "attendant": message(att_code, attendant_lang, "attendant"),
        "pilgrim": message(pil_code, pilgrim_lang, "pilgrim"),
    }
