"""The ``symfp`` command."""

from __future__ import annotations

import argparse
import sys

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``symfp`` command."""
    p = argparse.ArgumentParser(
        prog="symfp",
        description="Derive, solve and simulate the Fokker-Planck equation of SGD-like recursions.",
    )
    p.add_argument("--version", action="version", version=f"symfp {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    p.add_subparsers(dest="verb", metavar="VERB")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 1 validation failed, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return 0
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
