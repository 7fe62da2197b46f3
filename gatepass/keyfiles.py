"""Key directories on disk: the files ``gatepass keys new`` writes.

``verifier/`` builds the bytes (``KeyRing.bundle_files()``); writing them is I/O and
lives here, so ``verifier/`` stays pure.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from verifier.keyring import KeyRing


def write_files(directory: Path, files: Mapping[str, bytes]) -> None:
    """Write key-directory files: private keys 0600 from creation, atomically replaced."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        path = directory / name
        tmp = directory / f".{name}.tmp"
        mode = 0o600 if name.endswith(".pem") else 0o644
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)


def write_key_directory(ring: KeyRing, directory: str | os.PathLike[str]) -> Path:
    """Write ``ring``'s key directory (as ``gatepass keys new`` does); return trust.json."""
    out = Path(directory)
    write_files(out, ring.bundle_files())
    return out / "trust.json"
