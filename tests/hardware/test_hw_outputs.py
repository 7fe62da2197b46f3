"""Gate outputs: admit/deny patterns, timing with a fake clock, faults reported."""

from __future__ import annotations

import time

import pytest

from hardware.errors import HardwareError, OutputFault
from hardware.outputs import GateOutputs, SimulatedOutputs, open_outputs


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def run_for(out: GateOutputs, clock: FakeClock, seconds: float, step: float = 0.01) -> None:
    end = clock.t + seconds
    while clock.t < end - 1e-9:
        clock.t = round(clock.t + step, 6)
        out.tick()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> SimulatedOutputs:
    out = open_outputs({"backend": "simulated", "relay_pulse_s": 0.5, "admit_light_s": 1.5,
                        "deny_light_s": 1.0, "pins": {"relay_feedback": 5}},
                       clock=clock, start_thread=False)
    assert isinstance(out, SimulatedOutputs)
    return out


def test_admit_pattern(sim: SimulatedOutputs, clock: FakeClock) -> None:
    sim.signal_admit()
    assert sim.state("relay") and sim.state("green") and sim.state("buzzer")
    run_for(sim, clock, 3.0)
    sim.assert_states("relay", [False, True, False])
    sim.assert_states("green", [False, True, False])
    sim.assert_states("buzzer", [False, True, False])
    sim.assert_states("red", [False])
    (start, length), = sim.pulses("relay")
    assert start == 1000.0 and length == pytest.approx(0.5, abs=0.011)
    assert sim.pulses("green")[0][1] == pytest.approx(1.5, abs=0.011)
    assert sim.pulses("buzzer")[0][1] == pytest.approx(0.15, abs=0.011)
    assert sim.health().ok and sim.health().admits == 1 and sim.pending == 0


def test_deny_pattern_is_distinct(sim: SimulatedOutputs, clock: FakeClock) -> None:
    sim.signal_deny()
    run_for(sim, clock, 2.0)
    sim.assert_states("relay", [False])  # the turnstile never moves
    sim.assert_states("green", [False])
    assert [round(p[1], 2) for p in sim.pulses("red")] == [1.0]
    beeps = sim.pulses("buzzer")
    assert len(beeps) == 3 and all(length == pytest.approx(0.1, abs=0.011) for _, length in beeps)
    assert sim.health().denies == 1


def test_deny_after_admit_keeps_the_pulse_and_overrides_lights(
    sim: SimulatedOutputs, clock: FakeClock
) -> None:
    sim.signal_admit()
    run_for(sim, clock, 0.2)
    sim.signal_deny()
    assert sim.state("relay") and sim.state("red") and not sim.state("green")
    run_for(sim, clock, 3.0)
    assert sim.pulses("relay")[0][1] == pytest.approx(0.5, abs=0.011)
    assert not any(sim.state(d) for d in ("relay", "green", "red", "buzzer"))


def test_second_admit_during_a_pulse_extends_it(sim: SimulatedOutputs, clock: FakeClock) -> None:
    sim.signal_admit()
    run_for(sim, clock, 0.3)
    sim.signal_admit()  # the next person, while the turnstile is still released
    run_for(sim, clock, 2.0)
    (start, length), = sim.pulses("relay")
    assert start == 1000.0 and length == pytest.approx(0.8, abs=0.011)
    assert sim.health().ok and sim.health().admits == 2


def test_failing_output_raises_and_is_in_health(sim: SimulatedOutputs, clock: FakeClock) -> None:
    sim.fail("relay", OSError("pin 17 busy"))
    with pytest.raises(OutputFault, match="relay failed to switch on") as info:
        sim.signal_admit()
    assert isinstance(info.value, HardwareError) and isinstance(info.value, OSError)
    assert sim.state("green")  # the other outputs still signalled
    health = sim.health()
    assert not health.ok and "pin 17 busy" in health.faults["relay"]
    sim.repair("relay")
    run_for(sim, clock, 2.0)
    sim.signal_admit()
    assert sim.health().ok


def test_failure_in_a_timed_step_is_reported(sim: SimulatedOutputs, clock: FakeClock) -> None:
    sim.signal_deny()
    sim.fail("buzzer")
    run_for(sim, clock, 1.0)
    assert "buzzer failed to switch" in sim.health().faults["buzzer"]


def test_stuck_relay_is_reported_through_feedback(sim: SimulatedOutputs,
                                                  clock: FakeClock) -> None:
    sim.stick("relay", False)
    sim.signal_admit()
    run_for(sim, clock, 0.2)
    health = sim.health()
    assert not health.ok and "relay stuck off" in health.faults["relay"]
    sim.repair("relay")
    run_for(sim, clock, 2.0)
    sim.signal_admit()
    run_for(sim, clock, 1.0)
    assert sim.health().ok


def test_relay_stuck_on_after_pulse(sim: SimulatedOutputs, clock: FakeClock) -> None:
    sim.stick("relay", True)
    sim.signal_admit()
    run_for(sim, clock, 1.0)
    assert "relay stuck on" in sim.health().faults["relay"]


def test_without_feedback_no_stuck_check(clock: FakeClock) -> None:
    out = SimulatedOutputs(clock=clock, start_thread=False)
    out.stick("relay", False)
    out.signal_admit()
    run_for(out, clock, 2.0)
    assert out.health().ok


def test_close_twice_switches_off_and_refuses_more(sim: SimulatedOutputs) -> None:
    sim.signal_admit()
    sim.close()
    sim.close()
    assert not any(sim.state(d) for d in ("relay", "green", "red", "buzzer"))
    with pytest.raises(OutputFault, match="closed"):
        sim.signal_deny()


def test_timing_thread_with_real_clock() -> None:
    with open_outputs({"backend": "simulated", "relay_pulse_s": 0.05, "admit_light_s": 0.08,
                       "admit_beep_s": 0.02, "tick_s": 0.002}) as out:
        assert isinstance(out, SimulatedOutputs)
        out.signal_admit()
        deadline = time.monotonic() + 10.0  # generous: the machine may be loaded
        while out.pending and time.monotonic() < deadline:
            time.sleep(0.01)
        assert out.pending == 0
        length = out.pulses("relay")[0][1]
        assert length is not None and 0.05 <= length < 3.0
    assert not [t for t in __import__("threading").enumerate() if t.name == "gate-outputs"]


def test_gpiozero_backend_on_mock_pins(clock: FakeClock) -> None:
    from gpiozero.pins.mock import MockConnectedPin, MockFactory

    factory = MockFactory()
    feedback = factory.pin(5)
    factory.pin(17, pin_class=MockConnectedPin, input_pin=feedback)  # relay drives feedback
    cfg = {"backend": "gpiozero", "pins": {"relay_feedback": 5}, "relay_pulse_s": 0.3}
    with open_outputs(cfg, pin_factory=factory, clock=clock, start_thread=False) as out:
        out.signal_admit()
        assert factory.pin(17).state and factory.pin(27).state and not factory.pin(22).state
        run_for(out, clock, 1.0)
        assert [s.state for s in factory.pin(17).states] == [False, True, False]
        assert out.health().ok
        out.signal_deny()
        assert factory.pin(22).state and not factory.pin(17).state


def test_gpiozero_stuck_feedback(clock: FakeClock) -> None:
    from gpiozero.pins.mock import MockFactory

    factory = MockFactory()  # feedback pin 5 never follows: a welded or dead relay
    cfg = {"backend": "gpiozero", "pins": {"relay_feedback": 5}}
    with open_outputs(cfg, pin_factory=factory, clock=clock, start_thread=False) as out:
        out.signal_admit()
        run_for(out, clock, 0.3)
        assert "relay stuck off" in out.health().faults["relay"]


def test_gpiozero_pin_trouble_is_an_output_fault(clock: FakeClock) -> None:
    from gpiozero.pins.mock import MockFactory

    factory = MockFactory()
    with (
        open_outputs({"backend": "gpiozero"}, pin_factory=factory, start_thread=False),
        pytest.raises(OutputFault, match="cannot open GPIO outputs"),
    ):
        open_outputs({"backend": "gpiozero"}, pin_factory=factory, start_thread=False)
    with pytest.raises(OutputFault, match="unknown gpiozero pin factory"):
        open_outputs({"backend": "gpiozero", "pin_factory": "nosuch"}, start_thread=False)
