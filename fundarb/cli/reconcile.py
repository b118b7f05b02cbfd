"""`fundarb reconcile`: not available yet (issue 6)."""

from __future__ import annotations

import argparse

from fundarb.cli._pending import no_arguments, not_ready

HELP = "reconcile (not available yet: issue 6)"
add_arguments = no_arguments


def main(args: argparse.Namespace) -> int:
    """Exit 2: this subcommand lands with issue 6."""
    return not_ready("reconcile", 6)
