"""`fundarb statecharts`: not available yet (issue 2)."""

from __future__ import annotations

import argparse

from fundarb.cli._pending import no_arguments, not_ready

HELP = "statecharts (not available yet: issue 2)"
add_arguments = no_arguments


def main(args: argparse.Namespace) -> int:
    """Exit 2: this subcommand lands with issue 2."""
    return not_ready("statecharts", 2)
