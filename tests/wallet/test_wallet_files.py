"""The wallet folder on disk: every file precached, nothing external, vendored with licences."""

from __future__ import annotations

import json
import re
from pathlib import Path

WALLET = Path(__file__).resolve().parents[2] / "wallet"
NOT_SERVED = {"LICENSE", "README", "update.sh"}


def _precached() -> set[str]:
    text = (WALLET / "sw.js").read_text()
    block = text[text.index("const FILES = [") : text.index("]", text.index("const FILES = ["))]
    return set(re.findall(r"'([^']+)'", block))


def test_service_worker_precaches_every_served_file() -> None:
    served = {
        p.relative_to(WALLET).as_posix()
        for p in WALLET.rglob("*")
        if p.is_file() and p.name not in NOT_SERVED and p.name != "sw.js"
    }
    files = _precached()
    assert "./" in files
    assert served == files - {"./"}, (served ^ (files - {"./"}))


def test_no_external_urls_in_what_the_page_loads() -> None:
    own = [WALLET / n for n in ("index.html", "app.js", "gpp.js", "store.js", "i18n.js",
                                "style.css", "sw.js", "manifest.webmanifest")]
    for path in own:
        text = path.read_text()
        assert not re.search(r"""(src|href|url)\s*[=(]\s*["']?(https?:)?//""", text), path.name


def test_manifest_is_installable() -> None:
    m = json.loads((WALLET / "manifest.webmanifest").read_text())
    assert m["display"] == "standalone" and m["start_url"]
    sizes = {i["sizes"] for i in m["icons"]}
    assert {"192x192", "512x512"} <= sizes
    for icon in m["icons"]:
        assert (WALLET / icon["src"]).is_file()


def test_every_vendored_package_has_its_licence_and_origin() -> None:
    script = (WALLET / "vendor" / "update.sh").read_text()
    for folder in sorted(p for p in (WALLET / "vendor").iterdir() if p.is_dir()):
        licence = (folder / "LICENSE").read_text()
        assert len(licence) > 200, folder.name
        origin = (folder / "README").read_text()
        m = re.match(r"npm package (\S+) (\d+\.\d+\.\d+) ", origin)
        assert m, origin
        assert f"{m.group(1)}@{m.group(2)}" in script, "update.sh pins what README names"
