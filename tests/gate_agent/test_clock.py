"""Trusted time: every source injected, no sleeping."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from gate_agent.clock import TrustedClock, timedatectl_synced


@dataclass
class FakeTime:
    wall: float = 1_800_000_000.0
    mono: float = 1000.0
    synced: bool | None = True

    def advance(self, s: float) -> None:
        self.wall += s
        self.mono += s


def clock(ft: FakeTime, system: str = "timedatectl", **kw: float) -> TrustedClock:
    return TrustedClock(
        system=system,  # type: ignore[arg-type]
        wall=lambda: ft.wall, mono=lambda: ft.mono, synced=lambda: ft.synced, **kw,
    )


def test_untrusted_until_ntp_or_beacon() -> None:
    ft = FakeTime(synced=False)
    c = clock(ft)
    c.poll()
    r = c.now()
    assert r.confidence == "untrusted" and not r.trusted and r.banner
    ft.synced = True
    c.poll()
    assert c.now().confidence == "synced"
    assert c.now().t == ft.wall


def test_ntp_lost_falls_back_to_monotonic_then_untrusted() -> None:
    ft = FakeTime()
    c = clock(ft, monotonic_valid_s=3600)
    c.poll()
    ft.synced = False
    ft.advance(60)
    c.poll()
    r = c.now()
    assert r.confidence == "monotonic" and r.trusted
    assert r.t == pytest.approx(ft.wall)
    ft.advance(3600)
    assert c.now().confidence == "untrusted"


def test_clock_set_back_is_detected_and_not_believed() -> None:
    ft = FakeTime()
    c = clock(ft, jump_threshold_s=5)
    c.poll()
    good = ft.wall
    ft.advance(10)
    ft.wall -= 7 * 86400  # someone sets the clock a week back
    r = c.now()
    assert r.confidence == "monotonic"
    assert r.t == pytest.approx(good + 10)  # extrapolated, not the wrong wall clock
    assert c.jumps == 1 and r.banner and "differs" in r.banner
    c.now()
    assert c.jumps == 1  # the same offset is one jump, not one per reading


def test_fake_hwclock_boot_then_beacon() -> None:
    # After a power cut the Pi restores an old time and has no NTP: a beacon fixes it.
    ft = FakeTime(wall=1_700_000_000.0, synced=False)
    c = clock(ft, beacon_valid_s=600, monotonic_valid_s=1200)
    c.poll()
    assert c.now().confidence == "untrusted"
    c.beacon(1_800_000_000.0)
    r = c.now()
    assert r.confidence == "beacon" and r.t == pytest.approx(1_800_000_000.0)
    ft.advance(700)
    assert c.now().confidence == "monotonic"
    assert c.now().t == pytest.approx(1_800_000_700.0)
    ft.advance(600)
    assert c.now().confidence == "untrusted"


def test_operator_override_expires() -> None:
    ft = FakeTime(synced=False)
    c = clock(ft, override_s=100)
    c.poll()
    assert c.override().confidence == "override"
    assert c.now().trusted
    ft.advance(101)
    assert c.now().confidence == "untrusted"


@pytest.mark.parametrize(("system", "expected"), [("trust", "synced"), ("distrust", "untrusted")])
def test_system_modes(system: str, expected: str) -> None:
    ft = FakeTime(synced=True)
    c = clock(ft, system=system)
    c.poll()
    assert c.now().confidence == expected


def test_timedatectl_probe_never_raises() -> None:
    assert timedatectl_synced(timeout=2.0) in (True, False, None)


def test_floor_refuses_a_clock_behind_the_ledger() -> None:
    ft = FakeTime(synced=True)
    c = clock(ft)
    c.set_floor(ft.wall + 3600)  # the ledger holds an event an hour "in the future"
    c.poll()
    r = c.now()
    assert r.confidence == "untrusted" and r.banner and "before the last recorded" in r.banner
    assert c.override().confidence == "override"  # the operator may still override
    c2 = clock(ft)
    c2.set_floor(ft.wall - 1)
    c2.poll()
    assert c2.now().confidence == "synced"
