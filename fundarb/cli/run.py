"""`fundarb run` (the default): run the engine until interrupted.

Paper mode (the default) trades the simulated venue replaying the data vendored in the package,
time-accelerated (``FUNDARB_SIM_SPEED``), with the embedded SQLite journal. Live venues run only
when configured and explicitly enabled (``FUNDARB_MODE=live`` and ``FUNDARB_LIVE_CONFIRM=yes``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

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


def rotate_paper_journal(config: Config, now: float | None = None) -> Path | None:
    """Paper mode: the simulated venue starts empty on every run, so a previous paper run's
    journal describes an exchange that no longer exists; reconciling against it would (rightly)
    quarantine every position. Move it aside instead; returns where it went (None: nothing to do).
    Live and testnet journals are never touched."""
    import time

    if config.mode is not Mode.PAPER or config.database_url is not None:
        return None
    journal = Path(config.data_dir) / "journal.sqlite3"
    if not journal.exists():
        return None
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    target = journal.with_name(f"journal.paper-{stamp}.sqlite3")
    for suffix in ("", "-wal", "-shm"):
        part = Path(f"{journal}{suffix}")
        if part.exists():
            part.rename(Path(f"{target}{suffix}"))
    return target


async def _main(config: Config, duration: float | None) -> None:
    from fundarb.engine.app import run_engine
    from fundarb.engine.venues import open_venues

    moved = rotate_paper_journal(config)
    if moved is not None:
        print(
            f"fundarb: paper mode starts a fresh simulated venue; previous journal kept as {moved}",
            file=sys.stderr,
        )
    async with open_venues(config) as venues:
        with trio.move_on_after(duration if duration is not None else float("inf")):
            async with trio.open_nursery() as n:
                await n.start(run_engine, config, venues)
                if config.mode is Mode.PAPER:
                    print(f"fundarb: paper mode on {', '.join(venues)}; Ctrl-C to stop", file=sys.stderr)
