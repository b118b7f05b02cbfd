"""Client order ids for venue adapters: the format lives in the core (:mod:`fundarb.core.client_ids`),
because the position state machine mints the ids; adapters import them from here."""

from fundarb.core.client_ids import (
    MAX_LENGTH,
    PREFIX,
    is_venue_generated,
    make_client_order_id,
    parse_client_order_id,
    venue_generated_kind,
)

__all__ = [
    "MAX_LENGTH",
    "PREFIX",
    "is_venue_generated",
    "make_client_order_id",
    "parse_client_order_id",
    "venue_generated_kind",
]
