"""Event stores: SQLite by default, PostgreSQL for ``postgresql://`` URLs.

``open_store(url)`` picks the implementation; see :mod:`central.store.base` for the
interface and its guarantees.
"""

from __future__ import annotations

from central.store.base import (
    AddResult,
    Anomaly,
    Conflict,
    CountRow,
    Document,
    GateRow,
    Store,
)

__all__ = [
    "AddResult",
    "Anomaly",
    "Conflict",
    "CountRow",
    "Document",
    "GateRow",
    "Store",
    "open_store",
]


def open_store(url: str) -> Store:
    """Open (and create if needed) the store at ``url``.

    ``postgresql://...`` (or ``postgres://``) selects PostgreSQL; ``sqlite:///path``,
    ``sqlite:path`` or a bare file path selects SQLite.
    """
    if url.startswith(("postgresql://", "postgres://")):
        from central.store.postgres import PostgresStore  # psycopg only when chosen

        return PostgresStore(url)
    from central.store.sqlite import SQLiteStore

    return SQLiteStore(url)
