"""`fundarb kill`: not available yet (issue 7)."""

from __future__ import annotations

import argparse

from fundarb.cli._pending import no_arguments, not_ready

HELP = "kill (not available yet: issue 7)"
add_arguments = no_arguments


def main(args: argparse.Namespace) -> int:
    """Exit 2: this subcommand lands with issue 7."""
    return not_ready("kill", 7)
