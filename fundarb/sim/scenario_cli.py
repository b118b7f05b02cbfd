"""``fundarb sim run SCENARIO.toml [--seed N] [--json]``: run one fault-injection scenario.

Prints the invariants (each OK or VIOLATED with what was measured), every position's final
state and the outcome hash; with ``--json`` one JSON object as the last stdout line. Exit status:
0 every invariant held, 1 an invariant was violated, 2 the scenario file is unusable.
``fundarb.cli.sim`` delegates its ``run`` subcommand here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from fundarb.sim.scenario import ScenarioError, load_scenario

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``sim run``."""
    parser.add_argument("scenario", help="scenario file, e.g. sim/scenarios/lost_ack.toml")
    parser.add_argument("--seed", type=int, default=None, help="seed (default: the scenario's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def main(args: argparse.Namespace) -> int:
    """Run the scenario; 0 when every invariant held, 1 on a violation, 2 on a bad file."""
    from fundarb.sim.scenario_runner import run_scenario

    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as e:
        print(f"fundarb sim run: {e}", file=sys.stderr)
        return 2
    if args.seed is not None and args.seed < 0:
        print("fundarb sim run: --seed must be >= 0", file=sys.stderr)
        return 2
    started = time.perf_counter()
    outcome = run_scenario(scenario, args.seed)
    elapsed = time.perf_counter() - started
    print(f"scenario {outcome.scenario} seed {outcome.seed}: {scenario.description}")
    print(
        f"  horizon {scenario.horizon_ms / 60_000:g} sim min at speed {scenario.speed:g} ({elapsed:.1f} s wall)"
    )
    for c in outcome.checks:
        print(f"  {'OK      ' if c.ok else 'VIOLATED'} {c.name:<14} {c.detail}")
    traded = [p for p in outcome.positions if p.state != "closed" or p.worst_naked_notional > 0]
    print(
        f"  positions ({len(outcome.positions)}, {len(outcome.positions) - len(traded)} closed without a fill):"
    )
    for p in traded:
        print(
            f"    {p.id:<14} {p.state:<10} naked max {p.worst_naked_notional:.2f} "
            f"{p.naked_notional_seconds:.1f} notional*s funding {p.funding} alerts {p.alerts} {p.reason}"
        )
    ttf = "n/a" if outcome.time_to_flat_s is None else f"{outcome.time_to_flat_s:.3f} s"
    print(
        f"  worst naked notional {outcome.worst_naked_notional:.2f}, "
        f"{outcome.naked_notional_seconds:.1f} notional*s, time to flat {ttf}"
    )
    print(f"  outcome hash {outcome.hash}: {'PASS' if outcome.ok else 'FAIL'}")
    if args.json:
        print(json.dumps(outcome.to_dict(), sort_keys=True))
    return 0 if outcome.ok else 1
