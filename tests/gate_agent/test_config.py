"""Config: strict TOML, field-by-field errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate_agent.config import load_config, summary
from gate_agent.errors import ConfigError

GOOD = """
gate = "g1"
site = "haram"
mode = "boarding"
ledger = "ledger.sqlite"

[permits]
types = ["umrah", "shuttle"]

[trust]
bundle = "trust.json"

[source]
kind = "folder"
path = "/tmp/frames"

[outputs]
backend = "simulated"

[broker]
host = "127.0.0.1"
port = 1883
"""


def test_good_config_resolves_relative_paths(tmp_path: Path) -> None:
    p = tmp_path / "gate.toml"
    p.write_text(GOOD)
    cfg = load_config(p)
    assert cfg.mode == "boarding"
    assert cfg.ledger == tmp_path / "ledger.sqlite"
    assert cfg.trust.bundle == tmp_path / "trust.json"
    assert cfg.broker is not None and cfg.source is not None
    assert "gate g1 at site haram" in summary(cfg)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (GOOD.replace('mode = "boarding"', 'mode = "exit"'), "mode"),
        (GOOD + "\n[capacity]\nper_slot = -1\n", "capacity.per_slot"),
        (GOOD.replace("[permits]", "[permits]\ntypo_key = 1"), "permits.typo_key"),
        (GOOD.replace('gate = "g1"', 'gate = "g 1/bad"'), "gate"),
        (GOOD.replace('kind = "folder"', 'kind = "webcam"'), "source"),
        (GOOD.replace("port = 1883", "port = 99999"), "broker.port"),
    ],
)
def test_bad_fields_are_named(tmp_path: Path, text: str, where: str) -> None:
    p = tmp_path / "gate.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(p)
    assert any(pr.startswith(where) for pr in info.value.problems), info.value.problems
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "raw", [b"gate = ", b"\xff\xfe garbage", b"[permits\n", b""]
)
def test_garbage_files_give_one_clear_error(tmp_path: Path, raw: bytes) -> None:
    p = tmp_path / "gate.toml"
    p.write_bytes(raw)
    with pytest.raises(ConfigError) as info:
        load_config(p)
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.toml")


def test_strict_site_passback_needs_a_broker(tmp_path: Path) -> None:
    p = tmp_path / "gate.toml"
    text = GOOD.replace("[broker]\nhost", "[x]\nhost").split("[x]")[0]
    p.write_text(text + '\n[passback]\nscope = "site"\noffline = "strict"\n')
    with pytest.raises(ConfigError, match="broker"):
        load_config(p)


def test_the_documented_pi_config_is_valid() -> None:
    import re
    import tomllib

    from gate_agent.config import config_from_dict

    doc = (Path(__file__).resolve().parents[2] / "docs" / "deploy-pi.md").read_text()
    block = re.search(r"```toml\n(.*?)```", doc, re.S)
    assert block, "docs/deploy-pi.md lost its sample config"
    cfg = config_from_dict(tomllib.loads(block.group(1)))
    assert cfg.source is not None and cfg.outputs is not None and cfg.broker is not None
