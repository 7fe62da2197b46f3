"""The attendant sees a camera outage: the real agent, a real folder camera pulled out and
put back, the real console page in Debian's headless Chromium (English and Arabic)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from gate_agent import i18n
from gate_agent.agent import GateAgent
from gate_agent.console.server import ConsoleServer
from hardware.sources import open_source

pytestmark = pytest.mark.browser


def test_camera_outage_banner_counts_and_clears(
    make_agent: Callable[..., GateAgent], browser_page: Any, tmp_path: Path
) -> None:
    page = browser_page
    folder = tmp_path / "camera"
    folder.mkdir()
    cv2.imwrite(str(folder / "blank.png"), np.full((120, 160), 255, np.uint8))
    src = open_source({"kind": "folder", "path": str(folder), "loop": True,
                       "reconnect_delay_s": 0.05, "max_reconnect_delay_s": 0.2,
                       "give_up_after_s": None})
    agent = make_agent(source=src)
    agent.start()
    try:
        with ConsoleServer(backend=agent, host="127.0.0.1", port=0) as server:
            page.goto(server.url + "/", timeout=20_000)
            page.wait_for_selector("#verdict[data-verdict='none']", timeout=10_000)
            assert page.locator("#source-banner").is_hidden()

            shutil.rmtree(folder)  # the camera is unplugged
            page.wait_for_selector("#source-banner[data-state='reconnecting']",
                                   state="visible", timeout=30_000)
            en = i18n.catalogue("en").ui["banner_camera_reconnecting"]
            pattern = "^" + re.escape(en).replace(re.escape("{s}"), r"(\d+)") + "$"
            text = page.text_content("#source-banner-text") or ""
            first = re.match(pattern, text)
            assert first, text
            # The seconds keep counting while it is away.
            page.wait_for_function(
                "n => { const m = document.getElementById('source-banner-text')"
                ".textContent.match(/\\d+/); return m && Number(m[0]) > n; }",
                arg=int(first.group(1)), timeout=30_000,
            )
            page.select_option("#console-lang", "ar")
            ar = i18n.catalogue("ar").ui["banner_camera_reconnecting"]
            page.wait_for_function(
                "prefix => document.getElementById('source-banner-text').textContent"
                ".startsWith(prefix)", arg=ar.split("(")[0], timeout=10_000,
            )
            assert page.evaluate("document.documentElement.dir") == "rtl"

            folder.mkdir()  # plugged back in
            cv2.imwrite(str(folder / "blank.png"), np.full((120, 160), 255, np.uint8))
            page.wait_for_selector("#source-banner", state="hidden", timeout=30_000)
    finally:
        agent.close()
