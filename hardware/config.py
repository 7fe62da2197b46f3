"""Config models for frame sources and gate outputs (pydantic v2, unknown keys refused).

The agent's TOML config composes these; tests build them from plain dicts::

    SOURCE_ADAPTER.validate_python({"kind": "folder", "path": "frames/"})
    OutputsConfig.model_validate({"backend": "simulated"})

:data:`SourceConfig` is a union discriminated on ``kind``: ``opencv``, ``folder``,
``picamera2``, ``wedge`` or ``scene``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Reopening(_Model):
    """Reopen settings shared by every source that can drop out (hardware.sources.reopen).

    A source that fails (camera unplugged, stream lost, scanner removed, folder gone) is
    closed and reopened after ``reconnect_delay_s``, doubling up to
    ``max_reconnect_delay_s`` with up to 20 % jitter; after ``give_up_after_s`` away it
    raises ``SourceGaveUp`` and the agent exits non-zero, so systemd restarts it.
    """

    reconnect_delay_s: float = Field(
        default=1.0, gt=0, le=3600, description="First wait before reopening a dropped source."
    )
    max_reconnect_delay_s: float = Field(
        default=10.0, gt=0, le=3600,
        description="Longest wait between reopen attempts (the wait doubles up to this).",
    )
    give_up_after_s: float | None = Field(
        default=60.0, gt=0,
        description="Raise SourceGaveUp when a dropped source stays away this long (the "
        "agent then exits non-zero for systemd to restart it); None retries for ever.",
    )

    @model_validator(mode="after")
    def _delays_in_order(self) -> _Reopening:
        if self.max_reconnect_delay_s < self.reconnect_delay_s:
            raise ValueError(
                f"max_reconnect_delay_s ({self.max_reconnect_delay_s:g}) must not be below "
                f"reconnect_delay_s ({self.reconnect_delay_s:g})"
            )
        return self


class OpenCVSourceConfig(_Reopening):
    """A camera, stream or video file read through ``cv2.VideoCapture``."""

    kind: Literal["opencv"] = Field(description="Selects the OpenCV capture backend.")
    device: int | str = Field(
        description="Camera index (0), device path (/dev/video0), RTSP/HTTP URL or video file."
    )
    width: int | None = Field(default=None, gt=0, description="Requested frame width in pixels.")
    height: int | None = Field(default=None, gt=0, description="Requested frame height in pixels.")
    fps: float | None = Field(default=None, gt=0, description="Requested capture rate.")
    fourcc: str | None = Field(
        default=None, min_length=4, max_length=4,
        description="Requested pixel format of a USB camera, e.g. MJPG.",
    )
    on_end: Literal["auto", "stop", "reconnect"] = Field(
        default="auto",
        description="What a failed read means: 'stop' ends the source, 'reconnect' reopens it; "
        "'auto' stops for video files and reconnects for cameras and streams.",
    )
    drop_stale: bool | None = Field(
        default=None,
        description="Read on a grabber thread and deliver only the newest frame; None = yes "
        "for cameras and streams, no for video files.",
    )
    stall_after_s: float | None = Field(
        default=10.0, gt=0,
        description="A stream URL that delivers no frame for this long counts as dropped "
        "(OpenCV's open and read timeouts); None keeps OpenCV's own timeouts.",
    )


class FolderSourceConfig(_Reopening):
    """Image files from a folder in name order, for tests and batch checks."""

    kind: Literal["folder"] = Field(description="Selects the image-folder backend.")
    path: str = Field(description="Folder holding the images.")
    pattern: str = Field(default="*", description="Glob of the files to read within the folder.")
    loop: bool = Field(
        default=False,
        description="Start again after the last image (the folder is listed again each pass).",
    )


class Picamera2SourceConfig(_Reopening):
    """The Raspberry Pi camera through picamera2 (only importable on a Pi)."""

    kind: Literal["picamera2"] = Field(description="Selects the picamera2 backend.")
    camera_num: int = Field(default=0, ge=0, description="Which attached camera to open.")
    width: int = Field(default=1280, gt=0, description="Frame width in pixels.")
    height: int = Field(default=720, gt=0, description="Frame height in pixels.")
    fps: float | None = Field(default=None, gt=0, description="Frame rate; None keeps the default.")
    stall_after_s: float = Field(
        default=5.0, gt=0,
        description="No frame for this long counts as an unplugged camera (reopened).",
    )


class WedgeSourceConfig(_Reopening):
    """A keyboard-wedge handheld scanner: one payload per line.

    An evdev scanner that is unplugged is reopened (the reopen settings apply). Standard
    input cannot be reopened: end of input on a pipe or terminal raises ``SourceGaveUp`` at
    once (the agent exits non-zero), while a regular file or in-memory stream just ends.
    """

    kind: Literal["wedge"] = Field(description="Selects the keyboard-wedge backend.")
    device: str = Field(
        default="stdin",
        description="'stdin' to read lines from standard input, or an evdev input device "
        "path such as /dev/input/by-id/usb-...-event-kbd.",
    )
    grab: bool = Field(
        default=True,
        description="Grab the evdev device so scans do not also type into the console.",
    )
    max_line_bytes: int = Field(
        default=4096, gt=0, description="Longer lines are dropped as garbage, not truncated."
    )


class SceneSourceConfig(_Reopening):
    """The scene simulator: permit payloads rendered as a camera would see them."""

    kind: Literal["scene"] = Field(description="Selects the scene simulator.")
    payloads: list[str] = Field(
        default_factory=list,
        description="Payload texts (UTF-8) to present; empty means generated 'GP1:' payloads.",
    )
    seed: int = Field(
        default=0, ge=0, description="Random seed: the same seed replays the same frames."
    )
    width: int = Field(default=1280, gt=0, description="Frame width in pixels.")
    height: int = Field(default=720, gt=0, description="Frame height in pixels.")
    impairments: list[str] = Field(
        default_factory=list,
        description="Impairments to cycle through (see hardware.scene.IMPAIRMENTS); empty = all.",
    )
    frames: int | None = Field(
        default=None, ge=0, description="Stop after this many frames; None runs forever."
    )


SourceConfig = Annotated[
    OpenCVSourceConfig
    | FolderSourceConfig
    | Picamera2SourceConfig
    | WedgeSourceConfig
    | SceneSourceConfig,
    Field(discriminator="kind"),
]
#: Validates a plain dict (e.g. a TOML table) into the matching source config.
SOURCE_ADAPTER: TypeAdapter[SourceConfig] = TypeAdapter(SourceConfig)


def parse_source_config(data: Any) -> SourceConfig:
    """Validate ``data`` (a dict or an existing model) into a :data:`SourceConfig`."""
    if isinstance(data, BaseModel):
        data = data.model_dump()
    return SOURCE_ADAPTER.validate_python(data)


class OutputPins(_Model):
    """GPIO pins (BCM numbers or gpiozero pin names) of the gate's outputs."""

    relay: int | str = Field(default=17, description="Turnstile release relay.")
    green: int | str = Field(default=27, description="Green 'admit' light.")
    red: int | str = Field(default=22, description="Red 'deny' light.")
    buzzer: int | str = Field(default=23, description="Buzzer.")
    relay_feedback: int | str | None = Field(
        default=None,
        description="Optional input that follows the relay (a spare contact); when set, a relay "
        "that does not follow its command is reported as stuck.",
    )


class OutputsConfig(_Model):
    """Relay, lights and buzzer: which backend drives them and the admit/deny patterns.

    Admit: relay pulse, green light, one short beep. Deny: relay stays off, red light,
    ``deny_beeps`` short beeps.
    """

    # Required: an [outputs] section that forgets its backend must not quietly drive a
    # simulated turnstile while the real one stays shut.
    backend: Literal["gpiozero", "simulated"] = Field(
        description="'gpiozero' on a Pi; 'simulated' records a history (required)."
    )
    pins: OutputPins = Field(default_factory=OutputPins, description="GPIO pins of the outputs.")
    pin_factory: str | None = Field(
        default=None,
        description="gpiozero pin factory name (lgpio, rpigpio, native, mock); None = default.",
    )
    active_high: bool = Field(default=True, description="Outputs are on when the pin is high.")
    relay_active_high: bool = Field(
        default=True, description="The relay board is on when its pin is high (many are low)."
    )
    relay_pulse_s: float = Field(
        default=0.8, gt=0, le=30, description="How long the turnstile relay is held on per admit."
    )
    admit_light_s: float = Field(default=2.0, gt=0, le=60, description="Green light time on admit.")
    deny_light_s: float = Field(default=2.0, gt=0, le=60, description="Red light time on deny.")
    admit_beep_s: float = Field(default=0.15, gt=0, le=5, description="Length of the admit beep.")
    deny_beep_s: float = Field(default=0.1, gt=0, le=5, description="Length of each deny beep.")
    deny_beep_gap_s: float = Field(default=0.08, gt=0, le=5, description="Gap between deny beeps.")
    deny_beeps: int = Field(default=3, ge=2, le=10, description="Number of deny beeps.")
    feedback_timeout_s: float = Field(
        default=0.1, gt=0, le=5,
        description="How long the relay feedback input may take to follow the relay.",
    )
    tick_s: float = Field(
        default=0.005, gt=0, le=0.1, description="Period of the thread that times the pulses."
    )

    @model_validator(mode="after")
    def _distinct_pins(self) -> OutputsConfig:
        pins = [self.pins.relay, self.pins.green, self.pins.red, self.pins.buzzer]
        if self.pins.relay_feedback is not None:
            pins.append(self.pins.relay_feedback)
        if len({str(p) for p in pins}) != len(pins):
            raise ValueError(f"output pins must be distinct, got {pins}")
        return self
