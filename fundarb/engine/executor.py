"""Run the state machine's commands against venues; every outcome comes back as an event.

This is the thin shell around :mod:`fundarb.core.position`: a command is executed under a
deadline, and whatever happens (an acknowledgement, a rejection, a timeout, a cancellation) is
turned into a core event for the position's inbox. Nothing here decides anything: the mapping
from venue errors to events is one table (:func:`event_for_error`), so a timeout is never
mistaken for a rejection (the hummingbot #8457 failure) and a rejection never for a fill.

``rest_fallback`` mode (used when a venue's websocket is gone, e.g. during a shielded clean-up)
follows every placement by polling the order over REST until it is done, so fills are learnt
without the user-data stream.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from decimal import Decimal

import attrs
import trio

from fundarb.core import events as ev
from fundarb.core.commands import CancelOrder, PlaceOrder, QueryOrder
from fundarb.core.model import Fill, InstrumentId, OrderStatus
from fundarb.venues.errors import (
    OrderNotFound,
    OrderRejected,
    RateLimited,
    VenueError,
    VenueUnavailable,
)
from fundarb.venues.protocol import Venue

__all__ = ["CommandExecutor", "ExecutorSettings", "event_for_error"]

Deliver = Callable[[object], None]
log = logging.getLogger("fundarb.executor")


@attrs.frozen
class ExecutorSettings:
    """Deadlines and retry pacing, in seconds."""

    order_timeout: float = 3.0
    query_retry_delay: float = 0.5
    not_found_grace: float = 1.0
    not_found_checks: int = 2
    poll_interval: float = 0.2
    max_rate_limit_wait: float = 10.0
    reject_backoff: float = 0.25  # first pause before reporting a rejected reducing order (its retry follows)


def _own_fills(rows: list[Fill], cid: str, order_id: str | None) -> list[Fill]:
    """The rows that are fills of our order ``cid`` (venue order ``order_id``), carrying ``cid``:
    Binance's trade lists have no client ids, so its rows are matched by venue order id."""
    out = []
    for f in rows:
        if f.client_order_id == cid:
            out.append(f)
        elif not f.client_order_id and order_id is not None and f.venue_order_id == order_id:
            out.append(attrs.evolve(f, client_order_id=cid))
    return out


def event_for_error(cid: str, error: BaseException, *, placing: bool) -> object:
    """The event an order request's failure means. ``placing``: the request was a placement.

    * a venue rejection -> ``OrderRejected`` (not retryable: the same order would fail again);
    * rate limited, or the venue unreachable before anything was sent -> ``OrderRejected``
      retryable for a placement (nothing happened), ``OrderOutcomeUnknown`` otherwise;
    * anything else (timeout, cancellation, 5xx after send, a bug) -> ``OrderOutcomeUnknown``.
    """
    if isinstance(error, OrderRejected) and placing:
        return ev.OrderRejected(cid, error.reason, str(error.code or ""), retryable=False)
    if isinstance(error, (RateLimited, VenueUnavailable)) and placing:
        return ev.OrderRejected(cid, str(error), str(error.code or ""), retryable=True)
    return ev.OrderOutcomeUnknown(cid, f"{type(error).__name__}: {error}")


@attrs.define
class CommandExecutor:
    """Executes one position's order commands. ``deliver`` puts events in the position's inbox
    (it must not block); ``on_sent`` is told when a placement is about to be written."""

    venues: Mapping[str, Venue]
    deliver: Deliver
    settings: ExecutorSettings = attrs.field(factory=ExecutorSettings)
    on_sent: Callable[[PlaceOrder], None] | None = None
    rest_fallback: bool = False
    since_ms: int = 0  # fills older than this are not ours to look at (the position's start)
    unconfirmed: set[str] = attrs.Factory(set)  # ids that may have been sent before a restart

    def _venue(self, instrument: InstrumentId) -> Venue:
        return self.venues[instrument.venue]

    async def _sent_before(self, cmd: PlaceOrder) -> bool:
        """For an id that may have been sent before a restart: if the venue has it, report it and
        return True (it must not be sent twice); False when the venue has no such order."""
        req = cmd.request
        cid = req.client_order_id
        self.unconfirmed.discard(cid)
        try:
            with trio.fail_after(self.settings.order_timeout):
                found = await self._venue(req.instrument).query_order(req.instrument, cid)
        except OrderNotFound:
            return False
        except (VenueError, trio.TooSlowError) as e:  # cannot tell: the machine queries until it can
            self.deliver(ev.OrderOutcomeUnknown(cid, f"may have been sent before the restart ({e})"))
            return True
        if found.side is not req.side or found.quantity != req.quantity:
            log.critical(
                "%s was sent before the restart as %s %s, now wanted as %s %s: tracking the venue's order",
                cid, found.side.value, found.quantity, req.side.value, req.quantity,
            )  # fmt: skip
        else:
            log.warning("%s was sent before the restart: adopting it, not sending it again", cid)
        self.deliver(ev.OrderAccepted(cid, found.venue_order_id))
        await self._report(req.instrument, cid)
        return True

    def place_now(self, cmd: PlaceOrder) -> object | None:
        """Write ``cmd`` to its venue from the caller's task when the venue can do it at once
        (:class:`~fundarb.venues.protocol.PlacesNow`); returns the handle for :meth:`place`,
        or None, having sent nothing: then :meth:`place` sends it as usual."""
        req = cmd.request
        if self.rest_fallback or (self.unconfirmed and req.client_order_id in self.unconfirmed):
            return None
        start = getattr(self._venue(req.instrument), "start_order", None)
        if start is None:
            return None
        started = start(req)
        if started is not None and self.on_sent is not None:
            self.on_sent(cmd)
        return started

    async def place(self, cmd: PlaceOrder, started: object | None = None) -> None:
        """Send an order (or, given the handle of :meth:`place_now`, await the answer to the one
        already sent); deliver its acknowledgement, rejection or unknown outcome."""
        req = cmd.request
        cid = req.client_order_id
        venue = self._venue(req.instrument)
        if started is None:
            if self.unconfirmed and cid in self.unconfirmed and await self._sent_before(cmd):
                return
            if self.on_sent is not None:
                self.on_sent(cmd)
        try:
            with trio.fail_after(self.settings.order_timeout):
                if started is None:
                    update = await venue.place_order(req)
                else:
                    update = await venue.finish_order(started)  # type: ignore[attr-defined]
        except trio.TooSlowError:
            self.deliver(ev.OrderOutcomeUnknown(cid, "placement timed out"))
            return
        except RateLimited as e:
            await trio.sleep(min(e.retry_after, self.settings.max_rate_limit_wait))
            self.deliver(event_for_error(cid, e, placing=True))
            return
        except VenueError as e:
            if not cmd.purpose.increases:
                # the machine answers a rejected unwind/exit with another one at once: back off
                # (0.25 s, 0.5 s, 1 s, then 2 s) so a venue refusing for a while does not exhaust them
                await trio.sleep(min(self.settings.reject_backoff * 2**cmd.attempt, 2.0))
            self.deliver(event_for_error(cid, e, placing=True))
            return
        except trio.Cancelled:
            self.deliver(ev.OrderOutcomeUnknown(cid, "placement cancelled in flight"))
            raise
        self.deliver(ev.OrderAccepted(cid, update.venue_order_id))
        if update.status.is_terminal:
            await self._report(req.instrument, cid)
        elif self.rest_fallback:
            await self._poll_until_done(req.instrument, cid)

    async def cancel(self, cmd: CancelOrder) -> None:
        """Cancel; deliver the final cumulative fill, or ask for a query when it failed."""
        venue = self._venue(cmd.instrument)
        try:
            with trio.fail_after(self.settings.order_timeout):
                update = await venue.cancel_order(cmd.instrument, cmd.cid)
        except trio.TooSlowError:
            self.deliver(ev.OrderOutcomeUnknown(cmd.cid, "cancel timed out"))
            return
        except VenueError as e:  # already filled, unknown order, ...: find out what it is
            self.deliver(ev.OrderOutcomeUnknown(cmd.cid, f"cancel failed: {type(e).__name__}: {e}"))
            return
        except trio.Cancelled:
            self.deliver(ev.OrderOutcomeUnknown(cmd.cid, "cancel cancelled in flight"))
            raise
        if update.status is OrderStatus.CANCELED or update.status is OrderStatus.EXPIRED:
            await self._report(cmd.instrument, cmd.cid, final=update.filled_qty)
        else:
            await self._report(cmd.instrument, cmd.cid)

    async def query(self, cmd: QueryOrder) -> None:
        """Query until the venue answers; an authoritative not-found needs repeated confirmation."""
        not_found = 0
        delay = self.settings.query_retry_delay
        while True:
            try:
                await self._report(cmd.instrument, cmd.cid, raise_not_found=True)
                return
            except OrderNotFound:
                not_found += 1
                if not_found >= self.settings.not_found_checks:
                    self.deliver(ev.OrderNotFound(cmd.cid))
                    return
                # a lost placement may still be on its way to the matching engine
                await trio.sleep(self.settings.not_found_grace)
            except (VenueError, trio.TooSlowError) as e:
                retry_after = e.retry_after if isinstance(e, RateLimited) else delay
                await trio.sleep(min(retry_after, self.settings.max_rate_limit_wait))
                delay = min(delay * 2, 10.0)

    async def _report(
        self,
        instrument: InstrumentId,
        cid: str,
        *,
        final: Decimal | None = None,
        raise_not_found: bool = False,
    ) -> None:
        venue = self._venue(instrument)
        try:
            with trio.fail_after(self.settings.order_timeout):
                update = await venue.query_order(instrument, cid)
                order_id = update.venue_order_id
                rows = await venue.fills_since(instrument, self.since_ms, order_id=order_id)
                fills = _own_fills(rows, cid, order_id)
        except OrderNotFound:
            if raise_not_found:
                raise
            self.deliver(ev.OrderOutcomeUnknown(cid, "order not found after acknowledgement"))
            return
        except (VenueError, trio.TooSlowError) as e:
            if raise_not_found:
                raise
            self.deliver(ev.OrderOutcomeUnknown(cid, f"report failed: {type(e).__name__}"))
            return
        filled = update.filled_qty if final is None else max(final, update.filled_qty)
        status = update.status
        self.deliver(ev.OrderStatusReported(cid, status, filled, tuple(fills)))

    async def _poll_until_done(self, instrument: InstrumentId, cid: str) -> None:
        venue = self._venue(instrument)
        deadline = trio.current_time() + self.settings.order_timeout * 3
        while trio.current_time() < deadline:
            await trio.sleep(self.settings.poll_interval)
            try:
                with trio.fail_after(self.settings.order_timeout):
                    update = await venue.query_order(instrument, cid)
            except (VenueError, trio.TooSlowError):
                continue
            if update.status.is_terminal:
                await self._report(instrument, cid)
                return
        self.deliver(ev.OrderOutcomeUnknown(cid, "still working after REST polling"))
