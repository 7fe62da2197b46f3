"""BrokerConfig: unknown keys refused, secrets read from env/file only, cross-field rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from sync.config import BrokerConfig
from sync.errors import SyncConfigError


def test_defaults_and_client_id() -> None:
    cfg = BrokerConfig.model_validate({})
    assert (cfg.protocol, cfg.port, cfg.tls, cfg.password()) == ("5", 1883, None, None)
    assert cfg.effective_client_id("g1") == "gp-gate-g1"


@pytest.mark.parametrize("bad", [
    {"hostname": "x"},  # unknown key
    {"password": "inline-secret"},  # secrets are never inline
    {"protocol": "4"},
    {"port": 0},
    {"batch_size": 501},
    {"client_id": "a/b"},
    {"password_env": "X"},  # a password needs a username
    {"username": "g1", "password_env": "X", "password_file": "/x"},
    {"tls": {"cert_file": "/c.pem"}},  # cert without key
    {"tls": {"ca_file": "/ca", "verify": False}},
    {"reconnect_min_s": 5, "reconnect_max_s": 1},
])
def test_invalid_configs_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        BrokerConfig.model_validate(bad)


def test_password_from_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GP_TEST_PW", "s3cret")
    assert BrokerConfig(username="g1", password_env="GP_TEST_PW").password() == "s3cret"
    monkeypatch.delenv("GP_TEST_PW")
    with pytest.raises(SyncConfigError, match="GP_TEST_PW"):
        BrokerConfig(username="g1", password_env="GP_TEST_PW").password()
    f = tmp_path / "pw"
    f.write_text("from-file\nignored\n")
    assert BrokerConfig(username="g1", password_file=f).password() == "from-file"
    f.write_text("")
    with pytest.raises(SyncConfigError, match="empty"):
        BrokerConfig(username="g1", password_file=f).password()
    with pytest.raises(SyncConfigError, match="cannot read"):
        BrokerConfig(username="g1", password_file=tmp_path / "missing").password()
