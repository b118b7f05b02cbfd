"""``CommandExecutor.place_now`` / ``place(cmd, started)``: two-phase placement in the executor.

``place_now`` writes through the venue's ``start_order`` when it offers one and may use it (not
in REST-fallback clean-up, not for an id that may have been sent before a restart), telling
``on_sent`` only when something left; ``place`` then awaits ``finish_order`` instead of sending
again, and maps its outcome to events exactly as for ``place_order``.
"""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import trio

from fundarb.core import events as ev
from fundarb.core.commands import OrderPurpose, PlaceOrder
from fundarb.core.model import OrderRequest, OrderStatus, OrderUpdate, Side
from fundarb.engine.executor import CommandExecutor, ExecutorSettings
from fundarb.venues.errors import OutcomeUnknown

from .harness import SPOT

CMD = PlaceOrder(
    "t1", "B", OrderPurpose.HEDGE, OrderRequest("fa.t1.B.2", SPOT, Side.BUY, D("0.1"), D("30000"))
)


class Venue:
    """``start_order`` answers ``accept`` (None: cannot write now); ``finish_order`` ``outcome``."""

    def __init__(self, accept: bool = True, outcome: Any = "ack") -> None:
        self.accept, self.outcome = accept, outcome
        self.calls: list[str] = []

    def start_order(self, request: OrderRequest) -> object | None:
        self.calls.append("start")
        return ("handle", request.client_order_id) if self.accept else None

    async def finish_order(self, started: object) -> OrderUpdate:
        self.calls.append("finish")
        assert started == ("handle", CMD.request.client_order_id)
        if self.outcome == "never":
            await trio.sleep_forever()
        if isinstance(self.outcome, Exception):
            raise self.outcome
        r = CMD.request
        return OrderUpdate(
            r.instrument, r.client_order_id, "v-1", OrderStatus.NEW, r.side, r.quantity, D(0), None, 1
        )

    async def place_order(self, request: OrderRequest) -> OrderUpdate:
        self.calls.append("place")
        raise AssertionError("sent twice")


def executor(venue: Any, **kw: Any) -> tuple[CommandExecutor, list[object], list[PlaceOrder]]:
    delivered: list[object] = []
    sent: list[PlaceOrder] = []
    ex = CommandExecutor(
        {"sim": venue}, delivered.append, ExecutorSettings(order_timeout=2.0), sent.append, **kw
    )
    return ex, delivered, sent


async def test_written_now_then_answered_without_a_second_send(autojump_clock):
    venue = Venue()
    ex, delivered, sent = executor(venue)
    started = ex.place_now(CMD)
    assert started is not None and venue.calls == ["start"] and sent == [CMD]
    await ex.place(CMD, started)
    assert venue.calls == ["start", "finish"]
    assert delivered == [ev.OrderAccepted(CMD.request.client_order_id, "v-1")]
    assert sent == [CMD]  # told once, when it left


async def test_nothing_written_now_when_it_may_not_or_cannot_be(autojump_clock):
    for venue, kw in (
        (Venue(), {"rest_fallback": True}),  # clean-up: REST, and polled
        (Venue(), {"unconfirmed": {CMD.request.client_order_id}}),  # looked up at the venue first
        (Venue(accept=False), {}),  # the venue cannot write it now
    ):
        ex, _, sent = executor(venue, **kw)
        assert ex.place_now(CMD) is None
        assert sent == []  # nothing left: place() tells on_sent when it sends
        assert venue.calls in ([], ["start"])

    class Plain:  # a venue without two-phase placement
        pass

    ex, _, sent = executor(Plain())
    assert ex.place_now(CMD) is None and sent == []


async def test_the_answer_maps_to_events_as_for_place_order(autojump_clock):
    venue = Venue(outcome=OutcomeUnknown("connection lost after the request was sent", venue="sim"))
    ex, delivered, _ = executor(venue)
    await ex.place(CMD, ex.place_now(CMD))
    [unknown] = delivered
    assert isinstance(unknown, ev.OrderOutcomeUnknown) and "connection lost" in unknown.reason

    venue = Venue(outcome="never")
    ex, delivered, _ = executor(venue)
    begun = trio.current_time()
    await ex.place(CMD, ex.place_now(CMD))
    assert delivered == [ev.OrderOutcomeUnknown(CMD.request.client_order_id, "placement timed out")]
    assert trio.current_time() - begun == 2.0
