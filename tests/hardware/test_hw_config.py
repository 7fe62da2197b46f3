"""Config models: discriminated sources, forbidden extras, described fields."""

from __future__ import annotations

import pydantic
import pytest

from hardware import config as hc


@pytest.mark.parametrize(
    ("data", "cls"),
    [
        ({"kind": "opencv", "device": 0}, hc.OpenCVSourceConfig),
        ({"kind": "opencv", "device": "rtsp://cam/stream"}, hc.OpenCVSourceConfig),
        ({"kind": "folder", "path": "frames"}, hc.FolderSourceConfig),
        ({"kind": "picamera2"}, hc.Picamera2SourceConfig),
        ({"kind": "wedge"}, hc.WedgeSourceConfig),
        ({"kind": "scene", "seed": 3}, hc.SceneSourceConfig),
    ],
)
def test_source_union_picks_by_kind(data: dict, cls: type) -> None:
    assert type(hc.parse_source_config(data)) is cls


@pytest.mark.parametrize(
    "data",
    [
        {"kind": "webcam", "device": 0},
        {"kind": "folder", "path": "x", "typo": 1},
        {"kind": "opencv"},
        {"kind": "scene", "width": 0},
    ],
)
def test_bad_source_configs_are_refused(data: dict) -> None:
    with pytest.raises(pydantic.ValidationError):
        hc.parse_source_config(data)


def test_outputs_defaults_and_refusals() -> None:
    cfg = hc.OutputsConfig(backend="simulated")
    assert cfg.backend == "simulated" and cfg.relay_pulse_s > 0
    # An [outputs] section without a backend is an error, never a silent simulation.
    with pytest.raises(pydantic.ValidationError, match="backend"):
        hc.OutputsConfig.model_validate({"pins": {"relay": 17}})
    with pytest.raises(pydantic.ValidationError, match="distinct"):
        hc.OutputsConfig.model_validate({"backend": "gpiozero",
                                         "pins": {"relay": 17, "green": 17}})
    with pytest.raises(pydantic.ValidationError):
        hc.OutputsConfig.model_validate({"backend": "gpio"})
    with pytest.raises(pydantic.ValidationError):
        hc.OutputsConfig.model_validate({"relay_pulse": 1.0})


@pytest.mark.parametrize(
    "model",
    [hc.OpenCVSourceConfig, hc.FolderSourceConfig, hc.Picamera2SourceConfig,
     hc.WedgeSourceConfig, hc.SceneSourceConfig, hc.OutputPins, hc.OutputsConfig],
)
def test_every_field_is_described_and_extras_forbidden(model: type[pydantic.BaseModel]) -> None:
    assert model.model_config.get("extra") == "forbid"
    undocumented = [n for n, f in model.model_fields.items() if not f.description]
    assert undocumented == []
    assert model.__doc__
