"""The ``gatepass`` command: the shell that composes every subsystem.

Nothing in ``verifier/``, ``hardware/``, ``gate_agent/``, ``sync/`` or ``central/``
imports this package; it sits on top and wires them into subcommands.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
