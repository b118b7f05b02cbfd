"""`fundarb decode`: not available yet (issue 4)."""

from __future__ import annotations

import argparse

from fundarb.cli._pending import no_arguments, not_ready

HELP = "decode (not available yet: issue 4)"
add_arguments = no_arguments


def main(args: argparse.Namespace) -> int:
    """Exit 2: this subcommand lands with issue 4."""
    return not_ready("decode", 4)
