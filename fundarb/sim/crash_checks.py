"""The crash test's bookkeeping: a read-only view of the engine's SQLite journal, the report,
and the checks run after the last restart (see ``sim/crash_test.py``, which drives the kills)."""

from __future__ import annotations

import sqlite3
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

__all__ = ["CrashReport", "Journal", "check_after_crashes"]


class Journal:
    """Read-only look at the engine's SQLite journal from the driver (WAL: readers never block)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _q(self, sql: str) -> list[tuple[Any, ...]]:
        if not self.path.exists():
            return []
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute(sql).fetchall()
        except sqlite3.OperationalError:  # no tables yet
            return []
        finally:
            conn.close()

    def rows(self) -> dict[int, tuple[str, int]]:
        """seq -> (kind, crc) of every committed row."""
        return {seq: (kind, crc) for seq, kind, crc in self._q("SELECT seq, kind, crc FROM journal")}

    def states(self) -> Counter[str]:
        """How many positions are in each state (the projection)."""
        return Counter(s for (s,) in self._q("SELECT state FROM positions"))


class CrashReport:
    """What the crash test measured (see :func:`run_crash_test`)."""

    def __init__(self) -> None:
        self.kills: list[dict[str, Any]] = []
        self.starts = 0
        self.problems: list[str] = []
        self.figures: dict[str, Any] = {}

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "ok": self.ok,
            "starts": self.starts,
            "kills": self.kills,
            "problems": self.problems,
            **self.figures,
        }


def check_after_crashes(
    report: CrashReport,
    workdir: Path,
    journal: Journal,
    durable: dict[int, tuple[str, int]],
    http: str,
    *,
    key: str,
    secret: str,
) -> None:
    """After the last restart: compare the journal and the server (REST at ``http``, with the
    engine's ``key``/``secret``) and add every problem found to ``report``."""
    import trio

    import fundarb.engine.app  # noqa: F401  (registers every journal tag the engine writes)
    from fundarb.core.commands import PlaceOrder
    from fundarb.core.events import OrderRejected
    from fundarb.core.position_model import Leg, PositionState
    from fundarb.engine.reconcile import read_snapshots, reconcile_journal
    from fundarb.engine.reconcile_records import ReconcileReported
    from fundarb.engine.records import AlertRaised, PositionStepped
    from fundarb.journal import open_journal
    from fundarb.venues.binance import BinanceVenue, Credentials
    from fundarb.venues.binance._endpoints import BaseUrls

    rows = journal.rows()
    lost = [s for s, row in durable.items() if rows.get(s) != row]
    if lost:
        report.problems.append(
            f"{len(lost)} durable journal rows lost or changed after a kill: seqs {lost[:10]}"
        )
    if rows and sorted(rows) != list(range(1, max(rows) + 1)):
        report.problems.append("journal seqs are not gap-free")

    async def gather() -> tuple[Any, ...]:
        async with open_journal(None, workdir) as j:
            records = await j.read()
        urls = BaseUrls(spot=http, futures=http, spot_stream="ws://unused", spot_ws_api="ws://unused",
                        futures_stream="ws://unused")  # fmt: skip
        venue = BinanceVenue(Credentials(key, secret), base_urls=urls)
        try:
            from fundarb.engine.recovery import fold_journal

            now = await venue.server_time_ms()
            snaps = await read_snapshots({"binance": venue}, fold_journal(records), now)
            positions = await venue.positions()
            balances = await venue.balances()
            fills = []
            for inst in await venue.instruments():
                if inst.id.symbol in ("BTCUSDT", "ETHUSDT"):
                    fills += await venue.fills_since(inst.id, 0)
        finally:
            await venue.aclose()
        return records, snaps, now, positions, balances, fills

    records, snaps, now, vpositions, balances, fills = trio.run(gather)
    recovered, result = reconcile_journal(records, snaps, now)
    if recovered.mismatches:
        report.problems.append(f"journal does not replay: {recovered.mismatches}")
    reports = [r.payload for r in records if isinstance(r.payload, ReconcileReported)]
    if len(reports) < report.starts:
        report.problems.append(f"{report.starts} engine starts but {len(reports)} reconciliation reports")
    bad = [
        d
        for d in result.differences
        if d.kind.value in ("drift", "orphan-order", "unowned-exposure", "unowned-fill", "missed-fill")
    ]
    for d in bad:
        report.problems.append(f"final reconciliation: {d.kind.value} {d.position_id or ''} {d.detail}")
    # no duplicate order
    cids = [r.payload.request.client_order_id for r in records if isinstance(r.payload, PlaceOrder)]
    dupes = [c for c, n in Counter(cids).items() if n > 1]
    if dupes:
        report.problems.append(f"client order ids sent twice: {dupes[:10]}")
    refused = [
        r.payload.event.cid
        for r in records
        if isinstance(r.payload, PositionStepped)
        and isinstance(r.payload.event, OrderRejected)
        and ("duplicate" in r.payload.event.reason.lower() or r.payload.event.code == "-4116")
    ]
    if refused:
        report.problems.append(f"orders refused as duplicates at the server: {refused[:10]}")
    journaled = set(cids)
    # Binance's trade lists carry no client order id: only fills that name one can be checked
    strangers = sorted(
        {f.client_order_id for f in fills if f.client_order_id and f.client_order_id not in journaled}
    )
    if strangers:
        report.problems.append(f"fills at the server for orders the journal never sent: {strangers[:10]}")
    # no naked leg
    perp: dict[str, Decimal] = {}
    for p in vpositions:
        perp[p.instrument.symbol] = perp.get(p.instrument.symbol, Decimal(0)) + p.quantity
    naked = {}
    for sym, base in (("BTCUSDT", "BTC"), ("ETHUSDT", "ETH")):
        spot = sum((b.free + b.locked - b.borrowed for b in balances if b.asset == base), Decimal(0))
        net = perp.get(sym, Decimal(0)) + spot
        lot = Decimal("0.001") if base == "BTC" else Decimal("0.01")
        if abs(net) > lot:
            naked[sym] = str(net)
    if naked:
        report.problems.append(f"naked exposure at the server (perp + spot per symbol): {naked}")
    failed = [p for p in recovered.positions.values() if p.state is PositionState.FAILED]
    for p in recovered.positions.values():
        if p.state not in (PositionState.FAILED, PositionState.CLOSED) and p.held(Leg.A) != p.held(Leg.B):
            report.problems.append(
                f"position {p.id} {p.state.value}: legs differ A={p.held(Leg.A)} B={p.held(Leg.B)}"
            )
    alerted = {r.position_id for r in records if isinstance(r.payload, AlertRaised)} | {
        r.position_id for r in records if type(r.payload).__name__ == "Alert"
    }
    for p in failed:
        if p.id not in alerted:
            report.problems.append(f"position {p.id} FAILED without an alert")
    states = Counter(p.state.value for p in recovered.positions.values())
    report.figures.update(
        journal_rows=len(rows),
        durable_rows_checked=len(durable),
        positions=dict(states),
        failed_positions=len(failed),
        orders_sent=len(cids),
        server_fills=len(fills),
        server_fills_without_client_id=sum(1 for f in fills if not f.client_order_id),
        reconciliation_reports=len(reports),
        differences_found_at_starts=sum(len(r.differences) for r in reports),
        kills_by_mode=dict(Counter(k["mode"] for k in report.kills)),
        acknowledgements=sum(k.get("acknowledged", 0) for k in report.kills),
        net_exposure_by_symbol={
            s: str(
                perp.get(s, Decimal(0))
                + sum((b.free + b.locked - b.borrowed for b in balances if b.asset == a), Decimal(0))
            )
            for s, a in (("BTCUSDT", "BTC"), ("ETHUSDT", "ETH"))
        },
    )
