"""Errors raised by :mod:`hardware` (frame sources, images, gate outputs).

Each leaf also subclasses the matching built-in, so callers may catch either::

    HardwareError
    ├── DriverMissing (ImportError)       a chosen backend's library is not installed
    ├── SourceUnavailable (OSError)       a camera/folder/device cannot be opened or came back never
    │   ├── SourceDisconnected            a source lost its device; it is being reopened
    │   └── SourceGaveUp                  a dropped source was not back within give_up_after_s
    ├── UnusableImage (ValueError)        a file is not a readable image, or an array is no frame
    │   └── ImageTooLarge                 an image file is above the byte, side or pixel limits
    └── OutputFault (OSError)             a relay/light/buzzer failed or is stuck
"""

from __future__ import annotations


class HardwareError(Exception):
    """Root of every error raised by :mod:`hardware`."""


class DriverMissing(HardwareError, ImportError):
    """The backend chosen in config needs a library that is not installed here."""


class SourceUnavailable(HardwareError, OSError):
    """A frame source cannot be opened, or did not come back within its give-up time."""


class SourceDisconnected(SourceUnavailable):
    """A source lost its device (unplugged, stream cut, folder gone); it is reopened."""


class SourceGaveUp(SourceUnavailable):
    """A dropped source could not be reopened within its ``give_up_after_s``."""


class UnusableImage(HardwareError, ValueError):
    """A file is not a readable image, or an array cannot be used as a frame."""


class OutputFault(HardwareError, OSError):
    """A gate output (relay, light, buzzer) raised or did not follow its command."""


class ImageTooLarge(UnusableImage):
    """An image file is above the documented byte, side or pixel limits (hardware.image)."""
