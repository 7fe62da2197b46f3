"""``gatepass bench WHAT``: benchmarks that print one JSON object and compare to a baseline.

Each benchmark is a module ``gatepass.bench.<what>`` exposing ``register(subparsers)``.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

BENCHMARKS = ("verify", "decode", "agent", "sync", "presentation")


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "bench", help="run a benchmark and print JSON", description=__doc__
    )
    bench_sub = parser.add_subparsers(dest="bench", metavar="WHAT", required=True)
    for name in BENCHMARKS:
        try:
            module = importlib.import_module(f"gatepass.bench.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"gatepass.bench.{name}":
                continue
            raise
        module.register(bench_sub)
