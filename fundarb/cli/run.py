"""`fundarb run`: not available yet (issue 5)."""

from __future__ import annotations

import argparse

from fundarb.cli._pending import no_arguments, not_ready

HELP = "run (not available yet: issue 5)"
add_arguments = no_arguments


def main(args: argparse.Namespace) -> int:
    """Exit 2: this subcommand lands with issue 5."""
    return not_ready("run", 5)
