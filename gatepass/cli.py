"""Entry point of the ``gatepass`` command.

Each subcommand lives in its own module under :mod:`gatepass.commands` and exposes
``register(subparsers)``; it sets ``func`` on its parser to a callable taking the
parsed arguments and returning an exit code. Command modules import their heavy
dependencies (OpenCV, paho, psycopg...) inside ``func`` so that ``gatepass --help``
stays fast and a gate without a camera library can still verify.

Errors reach the user as one line ``gatepass: error: ...`` with exit code 1 (2 for
usage errors); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from gatepass import __version__

#: Subcommand modules, in the order ``gatepass --help`` lists them.
COMMAND_MODULES = (
    "verify",
    "keys",
    "issue",
    "present",
    "decode",
    "agent",
    "central",
    "gates",
    "bench",
    "conformance",
    "simulate",
    "demo",
)


class UsageError(Exception):
    """The command line asks for something impossible (exit code 2)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gatepass",
        description="Edge gate checkpoints for signed QR permits.",
    )
    parser.add_argument("--version", action="version", version=f"gatepass {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks and debug logging"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"gatepass.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"gatepass.commands.{name}":
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(func(args))
    except UsageError as exc:
        if args.debug:
            raise
        print(f"gatepass: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:
        if args.debug:
            raise
        print(f"gatepass: error: {_one_line(exc)}", file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().replace("\n", " ") or type(exc).__name__
    # Errors of our own packages explain themselves; anything else is a surprise
    # worth naming by type so a bug report says what broke.
    module = type(exc).__module__.split(".")[0]
    if module in {"verifier", "hardware", "gate_agent", "sync", "central", "gatepass"}:
        return text
    if isinstance(exc, OSError):
        return text
    return f"unexpected {type(exc).__name__}: {text} (rerun with --debug for the traceback)"
