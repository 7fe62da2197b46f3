"""The central dashboard: a page, a JSON API and ``/metrics``, served by the centre itself."""

from __future__ import annotations

from central.dashboard.api import build_summary
from central.dashboard.server import DashboardServer

__all__ = ["DashboardServer", "build_summary"]
