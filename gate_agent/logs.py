"""Structured logs: one JSON object per line on stderr (journald and log shippers parse it)."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, TextIO

# Attributes every LogRecord has; anything else came from ``extra=`` and is a field.
_STANDARD = frozenset(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None)))
_STANDARD = _STANDARD | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """``{"t": ..., "level": ..., "logger": ..., "msg": ..., <extra fields>}`` per line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "t": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "thread": record.threadName,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def use_json_logs(level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Replace the root handlers with one JSON-lines handler (called by ``agent run``)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
