"""Debounce: one scan per presentation, a new scan after the hold-off."""

from __future__ import annotations

import pytest

from gate_agent.debounce import Debouncer
from gate_agent.decode import Code


def code(data: bytes) -> Code:
    return Code(data, data.decode(), "zxingcpp")


A, B = code(b"GP1:A"), code(b"GP1:B")


def test_consecutive_frames_are_one_scan() -> None:
    d = Debouncer(hold_off_s=1.0)
    assert d.feed([A], 0.0) == [A]
    assert all(d.feed([A], t / 30) == [] for t in range(1, 300))  # ten seconds held up


def test_shown_again_after_hold_off_is_a_new_scan() -> None:
    d = Debouncer(hold_off_s=1.0)
    assert d.feed([A], 0.0) == [A]
    assert d.feed([], 0.5) == []
    assert d.feed([A], 0.9) == []  # out of sight for 0.9 s: same presentation
    assert d.feed([A], 2.0) == [A]  # out of sight 1.1 s: shown again


def test_hold_off_counts_from_last_sighting() -> None:
    d = Debouncer(hold_off_s=1.0)
    d.feed([A], 0.0)
    d.feed([A], 5.0)
    assert d.feed([A], 5.9) == []
    assert d.feed([A], 7.0) == [A]


def test_two_payloads_are_independent_and_deduplicated() -> None:
    d = Debouncer(hold_off_s=1.0)
    assert d.feed([A, B, A], 0.0) == [A, B]
    assert d.feed([B], 0.1) == []
    assert d.feed([A, B], 1.05) == [A]


def test_clock_going_backwards_never_readmits() -> None:
    d = Debouncer(hold_off_s=1.0)
    d.feed([A], 100.0)
    assert d.feed([A], 50.0) == []
    assert d.feed([A], 100.5) == []


def test_zero_hold_off_still_debounces_the_same_instant() -> None:
    d = Debouncer(hold_off_s=0.0)
    assert d.feed([A], 1.0) == [A]
    assert d.feed([A], 1.0) == []
    assert d.feed([A], 1.01) == [A]


def test_memory_stays_bounded() -> None:
    d = Debouncer(hold_off_s=1.0)
    for i in range(5000):
        d.feed([code(f"GP1:{i}".encode())], i * 2.0)
    assert len(d._last_seen) <= 257
    d.reset()
    assert d.feed([A], 1e6) == [A]


@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_bad_hold_off(bad: float) -> None:
    with pytest.raises(ValueError):
        Debouncer(bad)
