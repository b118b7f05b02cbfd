"""`fundarb reconcile`: show the differences between the journal and the venues; ``--ack`` them.

Reads the journal (``FUNDARB_DATABASE_URL`` or ``$FUNDARB_DATA_DIR/journal.sqlite3``), rebuilds
the positions, asks every configured venue for open orders, fills, positions, balances and
funding (paper mode: a freshly started simulated venue, whose state does not survive a restart),
and prints what differs, plus every reconciliation report the engine journaled that still waits
for an operator. Nothing is sent to a venue: the engine itself cancels orphans and corrects
positions when it starts.

``--ack`` journals an acknowledgement of everything journaled so far; the engine, which opens no
new position while a report is unacknowledged, reads it when it next starts. Run it with the
engine stopped: both would append to the same journal. If something answers on
``FUNDARB_HTTP_BIND`` (a running engine), ``--ack`` refuses unless ``--force``.

Exit status: 0 journal and venues agree and nothing waits for acknowledgement (or ``--ack``
succeeded); 1 differences found or acknowledgement pending; 2 bad configuration, or a refused
``--ack``.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from typing import Any, TextIO

import orjson
import trio

from fundarb.config import Config, ConfigError, load_config

__all__ = ["HELP", "add_arguments", "amain", "main", "render_text"]

HELP = "show differences between the journal and the venues; --ack acknowledges them (journaled)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--ack``, ``--note``, ``--json``, ``--force`` and ``--timeout``."""
    parser.add_argument("--ack", action="store_true", help="acknowledge every difference journaled so far")
    parser.add_argument("--note", default="acknowledged via CLI", help="why (journaled with --ack)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--force", action="store_true", help="--ack even if an engine seems to answer on FUNDARB_HTTP_BIND"
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per venue call")


def main(args: argparse.Namespace) -> int:
    """Load the configuration and run :func:`amain`."""
    try:
        config = load_config(os.environ)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 2
    if args.ack and not args.force and _engine_answers(config):
        print(
            f"fundarb reconcile: an engine seems to run on {config.http.bind}; stop it before --ack "
            "(or pass --force)",
            file=sys.stderr,
        )
        return 2
    return trio.run(amain, config, args.ack, args.note, args.json, args.timeout, sys.stdout)


def _engine_answers(config: Config) -> bool:
    host, port = config.http.bind.host, config.http.bind.port
    if not port:
        return False
    host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


async def amain(config: Config, ack: bool, note: str, as_json: bool, call_timeout: float, out: TextIO) -> int:
    """Reconcile the journal of ``config`` with its venues and print the outcome to ``out``."""
    import fundarb.engine.app  # noqa: F401  (registers every journal tag the engine writes)
    from fundarb.engine.clock import EngineClock
    from fundarb.engine.reconcile import acknowledge, read_snapshots, reconcile_journal
    from fundarb.engine.reconcile_records import unacknowledged
    from fundarb.engine.recovery import fold_journal
    from fundarb.engine.venues import open_venues
    from fundarb.journal import open_journal

    clock = EngineClock.start()
    now = clock.now_ms()
    url = config.database_url.reveal() if config.database_url else None
    async with open_journal(url, config.data_dir) as journal:
        records = await journal.read()
        async with open_venues(config) as venues:
            snapshots = await read_snapshots(venues, fold_journal(records), now, call_timeout=call_timeout)
        recovered, result = reconcile_journal(records, snapshots, now)
        pending = unacknowledged(records)
        acked_through = None
        if ack:
            acked_through = await acknowledge(journal, note, clock.now_ms())
    doc: dict[str, Any] = {
        "mode": config.mode.value,
        "venues": sorted(snapshots),
        "journal_last_seq": recovered.last_seq,
        "positions": [
            {
                "id": p.id,
                "state": p.state.value,
                "leg_a": f"{p.plan.leg_a.side.value} {p.held(_leg('A'))} {p.plan.leg_a.instrument.id}",
                "leg_b": f"{p.plan.leg_b.side.value} {p.held(_leg('B'))} {p.plan.leg_b.instrument.id}",
                "reason": p.reason,
            }
            for p in recovered.open()
        ],
        "differences": [_diff(d) for d in result.differences],
        "orphans": [u.client_order_id for u in result.orphans],
        "unreconcilable": [{"position_id": pid, "reason": why} for pid, why in result.failed],
        "corrections": [{"position_id": pid, "event": type(e).__name__} for pid, e in result.corrections],
        "unacknowledged": [
            {
                "seq": r.seq,
                "ts_ms": r.ts_ms,
                "differences": [_diff(d) for d in r.payload.differences if d.needs_ack],
            }
            for r in pending
        ],
        "needs_ack": result.needs_ack or bool(pending),
        "acknowledged_through": acked_through,
    }
    if as_json:
        out.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        out.write(render_text(doc))
    if ack:
        return 0
    return 1 if doc["differences"] or pending else 0


def _leg(name: str) -> Any:
    from fundarb.core.position_model import Leg

    return Leg(name)


def _diff(d: Any) -> dict[str, Any]:
    return {
        "kind": d.kind.value,
        "venue": d.venue,
        "position_id": d.position_id,
        "client_order_id": d.client_order_id,
        "needs_ack": d.needs_ack,
        "detail": d.detail,
    }


def render_text(doc: dict[str, Any]) -> str:
    """The human-readable report of :func:`amain`'s document."""
    lines = [
        f"journal: last seq {doc['journal_last_seq']}, {len(doc['positions'])} open position(s); "
        f"venues: {', '.join(doc['venues']) or '-'} ({doc['mode']} mode)"
    ]
    for p in doc["positions"]:
        lines.append(f"  {p['id']:<14} {p['state']:<13} A: {p['leg_a']}  B: {p['leg_b']}  {p['reason']}")
    if doc["differences"]:
        lines.append(f"differences (journal vs venues): {len(doc['differences'])}")
        for d in doc["differences"]:
            mark = "!" if d["needs_ack"] else " "
            who = d["position_id"] or "-"
            lines.append(f" {mark} {d['venue']:<8} {d['kind']:<18} {who:<14} {d['detail']}")
    else:
        lines.append("differences (journal vs venues): none")
    if doc["unacknowledged"]:
        lines.append(f"unacknowledged reconciliation reports: {len(doc['unacknowledged'])}")
        for r in doc["unacknowledged"]:
            lines.append(f"  seq {r['seq']}:")
            for d in r["differences"]:
                lines.append(
                    f"    {d['venue']:<8} {d['kind']:<18} {d['position_id'] or '-':<14} {d['detail']}"
                )
    if doc["acknowledged_through"] is not None:
        lines.append(f"acknowledged everything through seq {doc['acknowledged_through']} (journaled)")
    elif doc["needs_ack"]:
        lines.append(
            "the engine opens no new position while a reconciliation needing an operator is "
            "unacknowledged: fundarb reconcile --ack (with the engine stopped)"
        )
    return "\n".join(lines) + "\n"
