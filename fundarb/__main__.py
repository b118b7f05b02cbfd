"""Command line: ``python -m fundarb [run|backtest|sim|statecharts|decode|config|reconcile|kill]``.

``run`` is the default. Each subcommand lives in its own module under :mod:`fundarb.cli`,
exposing ``HELP`` (one line), ``add_arguments(parser)`` and ``main(args) -> int`` (the exit
status). Modules are imported lazily so ``--help`` stays fast and one broken subcommand cannot
take the others down.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["COMMANDS", "build_parser", "main"]

#: subcommand name -> module under fundarb.cli that implements it
COMMANDS: dict[str, str] = {
    "run": "fundarb.cli.run",
    "backtest": "fundarb.cli.backtest",
    "sim": "fundarb.cli.sim",
    "statecharts": "fundarb.cli.statecharts",
    "decode": "fundarb.cli.decode",
    "config": "fundarb.cli.config",
    "reconcile": "fundarb.cli.reconcile",
    "kill": "fundarb.cli.kill",
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-parser per command."""
    parser = argparse.ArgumentParser(
        prog="fundarb",
        description="Funding-rate arbitrage engine. All settings come from FUNDARB_* environment variables "
        "(see `fundarb config`).",
    )
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the subcommand and return its exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or args_list[0] not in (*COMMANDS, "-h", "--help"):
        args_list.insert(0, "run")  # `run` is the default command
    parser = build_parser()
    args = parser.parse_args(args_list)
    return int(args._module.main(args))


if __name__ == "__main__":
    sys.exit(main())
