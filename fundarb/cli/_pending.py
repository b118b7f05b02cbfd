"""Shared body of subcommands whose issue has not landed yet."""

from __future__ import annotations

import argparse
import sys


def not_ready(name: str, issue: int) -> int:
    """Say that ``name`` is not available yet and return exit status 2."""
    print(f"fundarb {name}: not available yet (tracked in issue {issue})", file=sys.stderr)
    return 2


def no_arguments(parser: argparse.ArgumentParser) -> None:
    """``add_arguments`` for a subcommand that takes none yet."""
