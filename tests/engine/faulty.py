"""A venue double for engine tests: the simulated venue with per-call hooks that misbehave."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fundarb.core.model import InstrumentId, OrderRequest, OrderUpdate
from fundarb.sim.venue import SimVenue

PlaceHook = Callable[[OrderRequest, Callable[[OrderRequest], Awaitable[OrderUpdate]]], Awaitable[OrderUpdate]]
CancelHook = Callable[[InstrumentId, str], Awaitable[OrderUpdate]]


class HookedVenue:
    """Delegates everything to a :class:`SimVenue`; ``place_hook``/``cancel_hook`` intercept."""

    def __init__(self, inner: SimVenue) -> None:
        self.inner = inner
        self.place_hook: PlaceHook | None = None
        self.cancel_hook: CancelHook | None = None
        self.placed: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def name(self) -> str:
        return self.inner.name

    async def place_order(self, request: OrderRequest) -> OrderUpdate:
        self.placed.append(request.client_order_id)
        if self.place_hook is not None:
            return await self.place_hook(request, self.inner.place_order)
        return await self.inner.place_order(request)

    async def cancel_order(self, instrument: InstrumentId, client_order_id: str) -> OrderUpdate:
        if self.cancel_hook is not None:
            return await self.cancel_hook(instrument, client_order_id)
        return await self.inner.cancel_order(instrument, client_order_id)
