"""Scene simulator: seeded and replayable, truthful labels, every impairment renders."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from hardware.scene import IMPAIRMENTS, SceneSimulator

PAYLOADS = [b"GP1:" + bytes(f"{i:03d}", "ascii") * 100 for i in range(3)]


def digest(frames: list) -> list[str]:
    return [hashlib.sha256(f.image.tobytes()).hexdigest()[:16] for f in frames]


def test_same_seed_same_frames() -> None:
    a = list(SceneSimulator(PAYLOADS, seed=11, size=(640, 360)).frames(40))
    b = list(SceneSimulator(PAYLOADS, seed=11, size=(640, 360)).frames(40))
    c = list(SceneSimulator(PAYLOADS, seed=12, size=(640, 360)).frames(40))
    assert digest(a) == digest(b)
    assert [(f.payload, f.impairment) for f in a] == [(f.payload, f.impairment) for f in b]
    assert digest(a) != digest(c)


def test_presentation_replays_alone() -> None:
    sim = SceneSimulator(PAYLOADS, seed=5, size=(640, 360))
    stream = list(sim.frames(60))
    k = stream[-1].presentation
    assert k is not None and k >= 3
    for j in (1, 2):
        original = [f for f in stream if f.presentation == j]
        replay = SceneSimulator(PAYLOADS, seed=5, size=(640, 360)).presentation(j)
        assert digest(original) == digest(replay)


def test_labels_and_layout() -> None:
    sim = SceneSimulator(PAYLOADS, seed=1, size=(1280, 720), gap_frames=(2, 3),
                         frames_per_presentation=(3, 4))
    frames = list(sim.frames(120))
    assert all(f.image.shape == (720, 1280, 3) and f.image.dtype == np.uint8 for f in frames)
    assert [f.index for f in frames] == list(range(120))
    empty = [f for f in frames if f.payload is None]
    shown = [f for f in frames if f.payload is not None]
    assert empty and shown and all(f.impairment is None for f in empty)
    assert {f.impairment for f in shown} == set(IMPAIRMENTS)
    assert {f.payload for f in shown} == set(PAYLOADS)
    for f in shown:  # every presentation keeps one payload and one impairment
        same = {(g.payload, g.impairment) for g in shown if g.presentation == f.presentation}
        assert len(same) == 1


def test_clean_frames_hold_the_stated_payload() -> None:
    from gate_agent.decode import make_decoder

    dec = make_decoder("zxingcpp")
    sim = SceneSimulator(PAYLOADS, seed=3, impairments=("clean", "rotation"))
    shown = [f for f in sim.frames(80) if f.payload is not None]
    read = [f for f in shown if [c.data for c in dec.decode(f.image)] == [f.payload]]
    assert len(read) >= 0.9 * len(shown)
    empty = [f for f in sim.frames(80) if f.payload is None]
    assert all(dec.decode(f.image) == [] for f in empty[:10])


def test_impairments_change_the_picture() -> None:
    base = SceneSimulator(PAYLOADS, seed=2, impairments=("clean",)).presentation(0)[-1].image
    for imp in IMPAIRMENTS[1:]:
        img = SceneSimulator(PAYLOADS, seed=2, impairments=(imp,)).presentation(0)[-1].image
        assert not np.array_equal(img, base), imp
    dark = SceneSimulator(PAYLOADS, seed=2, impairments=("lowlight",)).presentation(0)[-1].image
    assert dark.mean() < 0.4 * base.mean()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"impairments": ("fog",)},
        {"size": (32, 32)},
        {"media": ("billboard",)},
        {"frames_per_presentation": (0, 0)},
        {"gap_frames": (3, 1)},
        {"seed": -1},
    ],
)
def test_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SceneSimulator(PAYLOADS, **kwargs)
    with pytest.raises(ValueError):
        SceneSimulator([])
