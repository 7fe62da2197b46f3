"""Exceptions raised by :mod:`central`.

Tree::

    GatepassError                          (verifier.errors)
    └── CentralError
        ├── CentralConfigError (ValueError)    the central TOML config is invalid or unreadable
        ├── StoreError (RuntimeError)          the event store cannot be opened, read or written
        ├── GateMismatch (ValueError)          an event batch names another gate than its topic
        ├── BodyTooLarge (ValueError)          an HTTP request body exceeds the configured limit
        └── DownlinkError (ValueError)         a document given for the downlink is refused
            └── DocumentNotNewer               ... because the centre holds that version or newer
"""

from __future__ import annotations

from verifier.errors import GatepassError


class CentralError(GatepassError):
    """Root of the errors raised by :mod:`central`."""


class CentralConfigError(CentralError, ValueError):
    """The central configuration file is invalid or cannot be read."""


class StoreError(CentralError, RuntimeError):
    """The event store cannot be opened, read or written."""


class GateMismatch(CentralError, ValueError):
    """An event batch names a different gate than the topic it arrived on."""


class BodyTooLarge(CentralError, ValueError):
    """An HTTP request body is larger than the configured limit."""


class DownlinkError(CentralError, ValueError):
    """A document given to the centre for the downlink is malformed or refused."""


class DocumentNotNewer(DownlinkError):
    """A given document is not newer than what the centre holds on its line (HTTP 409)."""
