"""`fundarb sim serve` (a venue-compatible loopback server) and `fundarb sim run` (scenarios).

``sim serve --venue binance --port 0 [--ws-port 0] [--host 127.0.0.1] [--seed N] [--speed X]
[--step-ms MS] [--scenario FILE]`` serves the simulated exchange behind Binance's REST routes and
websocket streams on loopback. Its first stdout line is ``listening http://HOST:PORT ws://HOST:PORT``
so a parent process can find it; it then runs (keeping its exchange state) until SIGINT/SIGTERM.
Accepted API credentials are ``FUNDARB_BINANCE_API_KEY`` / ``FUNDARB_BINANCE_API_SECRET`` (the
engine's own), else ``sim-key`` / ``sim-secret``. ``--scenario`` is a scenario file
(:mod:`fundarb.sim.scenario`): its market (replayed from now), step and faults (a
:class:`fundarb.sim.faults.FaultyVenue`); ``--seed`` overrides the scenario's. Sim time starts at
the wall clock and runs at ``--speed`` (default 1, whatever the scenario says): clients sign with
their wall clock, and at speed X > 1 the server's clock pulls away from it (the adapter then
re-syncs on every -1021).

``sim run SCENARIO [--seed N] [--json]`` is :mod:`fundarb.sim.scenario_cli` (its arguments and
``main``): the engine against a fault-injection scenario, with its invariants checked.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import sys
import time

from fundarb.sim import scenario_cli

HELP = "simulator: `serve` a venue-compatible loopback server, `run` a scenario"

DEFAULT_KEY, DEFAULT_SECRET = "sim-key", "sim-secret"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``serve`` and ``run`` sub-commands."""
    sub = parser.add_subparsers(dest="sim_command", metavar="{serve,run}")
    serve = sub.add_parser("serve", help="serve the simulated exchange on loopback in a venue's wire format")
    serve.add_argument("--venue", choices=["binance"], default="binance", help="wire format (binance)")
    serve.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=0, help="REST port (0 picks a free one)")
    serve.add_argument("--ws-port", type=int, default=0, help="websocket port (0 picks a free one)")
    serve.add_argument("--seed", type=int, default=None, help="seed (book depth jitter, market, fault draws)")
    serve.add_argument("--speed", type=float, default=None, help="sim seconds per real second (default 1)")
    serve.add_argument("--step-ms", type=int, default=1000, help="market step in sim ms (stream cadence)")
    serve.add_argument("--scenario", metavar="FILE", help="scenario file: its market, speed and faults")
    run = sub.add_parser("run", help="run the engine against a fault-injection scenario and check it")
    scenario_cli.add_arguments(run)


def main(args: argparse.Namespace) -> int:
    """Dispatch to ``serve`` or ``run``; exit 2 on usage errors."""
    command = getattr(args, "sim_command", None)
    if command == "serve":
        return serve(args)
    if command == "run":
        return run(args)
    print("fundarb sim: choose a sub-command: serve or run", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    """Run a scenario (:func:`fundarb.sim.scenario_cli.main`)."""
    return int(scenario_cli.main(args))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(args: argparse.Namespace) -> int:
    """Run the loopback server until interrupted (see the module docstring)."""
    import trio

    from fundarb.sim.binance_server import BinanceServer
    from fundarb.sim.binance_server.server import check_speed, venue_from_scenario
    from fundarb.sim.venue import SimVenue

    if not _is_loopback(args.host):
        print(f"fundarb sim serve: --host must be a loopback address, got {args.host!r}", file=sys.stderr)
        return 2
    for name in ("port", "ws_port"):
        if not 0 <= getattr(args, name) <= 65535:
            print(f"fundarb sim serve: --{name.replace('_', '-')} must be in 0..65535", file=sys.stderr)
            return 2
    now_ms = time.time_ns() // 1_000_000
    try:
        if args.scenario:
            # speed 1 unless asked: clients sign with the wall clock, which a faster sim clock leaves behind
            speed = 1.0 if args.speed is None else args.speed
            venue, sim = venue_from_scenario(args.scenario, seed=args.seed, speed=speed, now_ms=now_ms)
        else:
            speed = check_speed(1.0 if args.speed is None else args.speed)
            sim = SimVenue.for_tests(
                seed=args.seed or 0, speed=speed, step_ms=args.step_ms, venue="binance", start_ms=now_ms
            )
            venue = sim
    except (ValueError, OSError) as exc:
        print(f"fundarb sim serve: {exc}", file=sys.stderr)
        return 2
    key = os.environ.get("FUNDARB_BINANCE_API_KEY") or DEFAULT_KEY
    secret = os.environ.get("FUNDARB_BINANCE_API_SECRET") or DEFAULT_SECRET
    server = BinanceServer(venue, credentials={key: secret}, clock=sim.sim_time_ms)

    async def main_task() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                urls = await nursery.start(server.run, args.host, args.port, args.ws_port)
                print(urls.banner(), flush=True)
                async for _sig in signals:
                    nursery.cancel_scope.cancel()
                    break

    try:
        trio.run(main_task)
    except OSError as exc:
        print(f"fundarb sim serve: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0
