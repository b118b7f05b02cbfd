"""`fundarb sim`: not available yet (issue 3)."""

from __future__ import annotations

import argparse

from fundarb.cli._pending import no_arguments, not_ready

HELP = "sim (not available yet: issue 3)"
add_arguments = no_arguments


def main(args: argparse.Namespace) -> int:
    """Exit 2: this subcommand lands with issue 3."""
    return not_ready("sim", 3)
