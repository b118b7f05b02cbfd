"""attrs validators of the domain values (private): finite, positive, non-negative Decimals,
epoch-millisecond timestamps, non-empty names. They raise :class:`InvalidValue` naming the field."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs

from fundarb.core.errors import InvalidValue

# Validators run on every decoded frame (the market-data hot path): one type test and one
# comparison each, no nested calls; only the failing path builds a message.


def _finite(_inst: Any, attribute: attrs.Attribute[Any], value: Decimal) -> None:
    if type(value) is not Decimal or not value.is_finite():
        raise InvalidValue(f"{attribute.name}: must be a finite Decimal, got {value!r}")


def _positive(inst: Any, attribute: attrs.Attribute[Any], value: Decimal) -> None:
    if type(value) is not Decimal or not value.is_finite() or value <= 0:
        _finite(inst, attribute, value)
        raise InvalidValue(f"{attribute.name}: must be > 0, got {value}")


def _non_negative(inst: Any, attribute: attrs.Attribute[Any], value: Decimal) -> None:
    if type(value) is not Decimal or not value.is_finite() or value < 0:
        _finite(inst, attribute, value)
        raise InvalidValue(f"{attribute.name}: must be >= 0, got {value}")


def _optional(validator: Any) -> Any:
    def check(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None:
            validator(inst, attribute, value)

    return check


def _timestamp(_inst: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if type(value) is not int or value < 0:
        raise InvalidValue(
            f"{attribute.name}: must be a non-negative int of ms since the epoch, got {value!r}"
        )


def _non_empty(_inst: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidValue(f"{attribute.name}: must be a non-empty string, got {value!r}")
