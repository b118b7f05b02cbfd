"""`fundarb backtest`: not available yet (issue 8)."""

from __future__ import annotations

import argparse

from fundarb.cli._pending import no_arguments, not_ready

HELP = "backtest (not available yet: issue 8)"
add_arguments = no_arguments


def main(args: argparse.Namespace) -> int:
    """Exit 2: this subcommand lands with issue 8."""
    return not_ready("backtest", 8)
