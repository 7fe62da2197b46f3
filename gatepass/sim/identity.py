"""Gate identities for the demo and the site simulation, as an operator would enrol them.

Each gate gets its own signing key (0600, where its config's ``key_file`` says) and a
place in a root-signed gate registry (what ``gatepass gates enrol`` and ``gatepass gates
registry`` produce), so the centre checks every batch exactly as it would at a real site.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gate_agent.config import AgentConfig
    from verifier.keys import SigningKey


def enrol(root: SigningKey, configs: Iterable[AgentConfig], registry: Path) -> Path:
    """Write a fresh key for every config that lacks one and sign a registry of them all.

    A key file that exists already (a restarted simulation worker's gate) is kept and
    enrolled as it is. Returns ``registry``.
    """
    from gate_agent.uplink import load_gate_key
    from verifier.keys import SigningKey
    from verifier.registry import make_entry, sign_registry

    entries = []
    for cfg in configs:
        if cfg.key_file is None:
            raise ValueError(f"gate {cfg.gate} has no key_file to enrol")
        path = Path(cfg.key_file)
        if path.exists():
            key = load_gate_key(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            key = SigningKey.generate()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(key.to_pem())
        entries.append(make_entry(cfg.gate, cfg.site, cfg.permits.gate_groups, cfg.mode,
                                  key.public_der()))
    registry.parent.mkdir(parents=True, exist_ok=True)
    registry.write_bytes(sign_registry(entries, 1, root, issued_at=int(time.time())))
    return registry
