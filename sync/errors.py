"""Exceptions raised by :mod:`sync`.

Tree::

    GatepassError                      (verifier.errors)
    └── SyncError
        ├── TopicError (ValueError)        a topic is not one of ours or names a bad id
        ├── WireError (ValueError)         a payload (batch, ack, status, health) is refused
        ├── SyncConfigError (ValueError)   broker settings are unusable (missing secret file...)
        ├── OutboxError (RuntimeError)     the SQLite outbox cannot be read or written
        └── LinkError (ConnectionError)    the MQTT link cannot start or publish
"""

from __future__ import annotations

from verifier.errors import GatepassError


class SyncError(GatepassError):
    """Root of the errors raised by :mod:`sync`."""


class TopicError(SyncError, ValueError):
    """A topic is not one of gatepass's or carries an invalid gate/site id."""


class WireError(SyncError, ValueError):
    """A wire payload (event batch, ack, status, health) is malformed or hostile."""


class SyncConfigError(SyncError, ValueError):
    """Broker settings cannot be used (missing secret, unreadable file, bad combination)."""


class OutboxError(SyncError, RuntimeError):
    """The SQLite outbox cannot be read or written."""


class LinkError(SyncError, ConnectionError):
    """The MQTT link cannot start, or a publish was refused by the client library."""
