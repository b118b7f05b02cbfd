"""`fundarb run` (the default): run the engine until interrupted.

Paper mode (the default) trades the simulated venue replaying the data vendored in the package,
time-accelerated (``FUNDARB_SIM_SPEED``), with the embedded SQLite journal. Live venues run only
when configured and explicitly enabled (``FUNDARB_MODE=live`` and ``FUNDARB_LIVE_CONFIRM=yes``).
"""

from __future__ import annotations

import argparse
import logging
import sys

import trio

from fundarb.config import Config, ConfigError, Mode, load_config

HELP = "run the engine (default: paper mode on the simulated venue with the SQLite journal)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--for SECONDS`` stops after a while (demos, smoke tests)."""
    parser.add_argument(
        "--for",
        dest="duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop (gracefully) after this many seconds",
    )


def main(args: argparse.Namespace) -> int:
    """Load the configuration, build the venues, run; 0 on a clean stop (SIGINT/SIGTERM)."""
    import os

    try:
        config = load_config(os.environ)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        trio.run(_main, config, args.duration)
    except KeyboardInterrupt:
        pass
    return 0


async def _main(config: Config, duration: float | None) -> None:
    from fundarb.engine.app import run_engine
    from fundarb.engine.venues import open_venues

    async with open_venues(config) as venues:
        with trio.move_on_after(duration if duration is not None else float("inf")):
            async with trio.open_nursery() as n:
                await n.start(run_engine, config, venues)
                if config.mode is Mode.PAPER:
                    print(f"fundarb: paper mode on {', '.join(venues)}; Ctrl-C to stop", file=sys.stderr)
