"""Exceptions raised by :mod:`gate_agent`.

Tree::

    GatepassError (verifier.errors)
    └── AgentError
        ├── ConfigError (ValueError)        the agent's TOML config is unreadable or invalid
        ├── LedgerError (RuntimeError)      the SQLite ledger cannot be opened or written
        ├── LedgerMismatch (ValueError)     the ledger file belongs to another gate
        ├── ConsoleRequestError (ValueError) a console action is impossible now (bad input)
        └── ShutdownError (RuntimeError)    a worker thread did not stop in time
"""

from __future__ import annotations

from verifier.errors import GatepassError


class AgentError(GatepassError):
    """Root of the errors raised by :mod:`gate_agent`."""


class ConfigError(AgentError, ValueError):
    """The agent configuration is unreadable or invalid; ``problems`` lists each field."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = problems or [message]
        super().__init__(message)


class LedgerError(AgentError, RuntimeError):
    """The ledger database cannot be opened or written."""


class LedgerMismatch(AgentError, ValueError):
    """The ledger file was created by another gate or site."""


class ConsoleRequestError(AgentError, ValueError):
    """A console action cannot be done as asked (missing reason, no trip open...)."""


class ShutdownError(AgentError, RuntimeError):
    """A worker thread did not stop within its timeout."""
