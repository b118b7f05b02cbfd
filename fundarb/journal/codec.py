"""Journal payload codec: registered frozen attrs values <-> JSON bytes, exactly.

A journal row stores a payload as ``(kind, bytes)``: ``kind`` is the tag its class was registered
under, ``bytes`` the orjson encoding of the value unstructured by a strict cattrs converter:

- nested attrs values become objects; tuples and frozensets become arrays (frozensets sorted
  by their encoding, so the bytes do not depend on hash order);
- :class:`~decimal.Decimal` is a string (``"0.00010000"`` keeps its digits and exponent);
- enums are stored by value; ``None`` is ``null``;
- :class:`~fundarb.core.model.InstrumentId` is ``"venue:market:symbol"`` (a nested object with
  ``venue``/``market``/``symbol`` is accepted on the way back);
- a field typed as a union of several attrs classes is stored as ``{"kind": tag, "value": ...}``.

Decoding is strict: an unknown kind, bytes that are not JSON, a missing or extra key, a value
of the wrong type or one the class's validators refuse raise
:class:`~fundarb.journal.errors.JournalCorrupt` naming the row. Nothing is coerced silently
(``"12"`` is not an int, ``1.5`` is not a Decimal).

>>> import attrs
>>> codec = Codec()
>>> @codec.journaled("demo.ping")
... @attrs.frozen
... class Ping:
...     n: int
>>> codec.encode(Ping(3))
('demo.ping', b'{"n":3}')
>>> codec.decode("demo.ping", b'{"n":3}')
Ping(n=3)
"""

from __future__ import annotations

import enum
import re
import types
import typing
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import attrs
import cattrs
import orjson

from fundarb.core.model import InstrumentId, Market
from fundarb.journal.errors import JournalCorrupt, JournalEncodeError

__all__ = ["CODEC", "Codec", "decode", "encode", "journaled", "register"]

T = TypeVar("T")
_TAG = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _attrs_members(tp: Any) -> tuple[type, ...]:
    return tuple(a for a in typing.get_args(tp) if a is not type(None))


class Codec:
    """A tag registry plus the converter that (de)serializes the registered classes.

    Tags are dotted lower-case names (``"venue.fill_reported"``); a tag is forever: rename a
    class freely, never re-use or change its tag, or old journals stop decoding.
    """

    def __init__(self) -> None:
        self._by_tag: dict[str, type] = {}
        self._by_cls: dict[type, str] = {}
        self._converter = self._make_converter()

    # --- registry ---------------------------------------------------------------------------

    def register(self, cls: type, tag: str) -> None:
        """Register attrs class ``cls`` under ``tag``. Re-registering the same pair is a no-op;
        a tag or class already bound to something else raises ``ValueError``."""
        if not attrs.has(cls):
            raise TypeError(f"{cls!r} is not an attrs class")
        if not isinstance(tag, str) or not _TAG.match(tag):
            raise ValueError(f"journal tag must look like 'area.name' (lower case), got {tag!r}")
        if self._by_tag.get(tag, cls) is not cls:
            raise ValueError(f"journal tag {tag!r} is already bound to {self._by_tag[tag]!r}")
        if self._by_cls.get(cls, tag) != tag:
            raise ValueError(f"{cls!r} is already registered as {self._by_cls[cls]!r}")
        attrs.resolve_types(cls)
        self._by_tag[tag] = cls
        self._by_cls[cls] = tag

    def journaled(self, tag: str) -> Callable[[type[T]], type[T]]:
        """Class decorator form of :meth:`register`."""

        def decorate(cls: type[T]) -> type[T]:
            self.register(cls, tag)
            return cls

        return decorate

    def tag_of(self, value_or_cls: Any) -> str:
        """The tag of a registered class or of an instance of one; :class:`JournalEncodeError` if none."""
        cls = value_or_cls if isinstance(value_or_cls, type) else type(value_or_cls)
        try:
            return self._by_cls[cls]
        except KeyError:
            raise JournalEncodeError(
                f"{cls.__module__}.{cls.__qualname__} is not registered for the journal"
            ) from None

    def class_of(self, tag: str) -> type | None:
        """The class registered under ``tag``, or None."""
        return self._by_tag.get(tag)

    @property
    def tags(self) -> dict[str, type]:
        """A copy of the tag -> class table."""
        return dict(self._by_tag)

    # --- encode / decode --------------------------------------------------------------------

    def encode(self, payload: Any) -> tuple[str, bytes]:
        """``(kind, bytes)`` for a registered value."""
        tag = self.tag_of(payload)
        try:
            data = self._converter.unstructure(payload)
            return tag, orjson.dumps(data)
        except JournalEncodeError:
            raise
        except Exception as exc:
            raise JournalEncodeError(f"cannot encode {tag}: {exc}") from exc

    def unstructure(self, payload: Any) -> Any:
        """The JSON-ready form of a registered value (what :meth:`encode` serializes)."""
        self.tag_of(payload)
        return self._converter.unstructure(payload)

    def decode(self, kind: str, data: bytes, *, seq: int | None = None) -> Any:
        """The value stored as ``(kind, data)``; :class:`JournalCorrupt` naming ``seq`` otherwise."""
        cls = self._by_tag.get(kind)
        if cls is None:
            raise JournalCorrupt(
                "unknown kind (written by a newer fundarb, or a tag was removed); refusing to skip it",
                seq=seq,
                kind=kind,
            )
        try:
            raw = orjson.loads(data)
        except (orjson.JSONDecodeError, TypeError) as exc:
            raise JournalCorrupt(f"payload is not valid JSON ({exc})", seq=seq, kind=kind) from None
        try:
            return self._converter.structure(raw, cls)
        except Exception as exc:
            detail = (
                "; ".join(cattrs.transform_error(exc, format_exception=_describe))
                if isinstance(exc, ExceptionGroup)
                else str(exc)
            )
            raise JournalCorrupt(
                f"payload does not decode as {cls.__qualname__}: {detail}", seq=seq, kind=kind
            ) from exc

    # --- converter --------------------------------------------------------------------------

    def _make_converter(self) -> cattrs.Converter:
        conv = cattrs.Converter(forbid_extra_keys=True)

        conv.register_unstructure_hook(Decimal, str)
        conv.register_structure_hook(Decimal, _structure_decimal)
        conv.register_unstructure_hook(InstrumentId, str)
        conv.register_structure_hook(InstrumentId, _structure_instrument_id)
        conv.register_structure_hook(int, _strict(int, "an integer"))
        conv.register_structure_hook(str, _strict(str, "a string"))
        conv.register_structure_hook(bool, _strict(bool, "a boolean"))
        conv.register_structure_hook(float, _structure_float)
        conv.register_structure_hook_func(
            lambda t: isinstance(t, type) and issubclass(t, enum.Enum), _structure_enum
        )

        def unstructure_set(value: Any) -> list[Any]:
            items = [conv.unstructure(v) for v in value]
            return sorted(items, key=orjson.dumps)

        def is_set(tp: Any) -> bool:
            return tp in (frozenset, set) or typing.get_origin(tp) in (frozenset, set)

        conv.register_unstructure_hook_func(is_set, unstructure_set)

        def is_attrs_union(tp: Any) -> bool:
            if not _is_union(tp):
                return False
            members = _attrs_members(tp)
            return len(members) > 1 and all(attrs.has(m) for m in members)

        def unstructure_union(value: Any) -> Any:
            if value is None:
                return None
            return {"kind": self.tag_of(value), "value": conv.unstructure(value)}

        def structure_union(raw: Any, tp: Any) -> Any:
            if raw is None and type(None) in typing.get_args(tp):
                return None
            if not isinstance(raw, dict) or set(raw) != {"kind", "value"}:
                raise ValueError(f"expected {{'kind': tag, 'value': ...}} for {tp}, got {raw!r}")
            cls = self._by_tag.get(raw["kind"])
            if cls is None or cls not in _attrs_members(tp):
                raise ValueError(f"kind {raw['kind']!r} is not a member of {tp}")
            return conv.structure(raw["value"], cls)

        conv.register_unstructure_hook_func(is_attrs_union, unstructure_union)
        conv.register_structure_hook_func(is_attrs_union, structure_union)
        return conv


def _describe(exc: BaseException, _tp: Any) -> str:
    if isinstance(exc, KeyError):
        return f"missing key {exc}"
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return f"unexpected keys {sorted(exc.extra_fields)}"
    return f"{type(exc).__name__}: {exc}"


def _strict(tp: type, what: str) -> Callable[[Any, Any], Any]:
    def structure(raw: Any, _tp: Any) -> Any:
        if type(raw) is not tp:
            raise ValueError(f"expected {what}, got {raw!r}")
        return raw

    return structure


def _structure_float(raw: Any, _tp: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise ValueError(f"expected a number, got {raw!r}")
    return float(raw)


def _structure_decimal(raw: Any, _tp: Any) -> Decimal:
    if not isinstance(raw, str):
        raise ValueError(f"expected a decimal string, got {raw!r}")
    try:
        return Decimal(raw)
    except InvalidOperation:
        raise ValueError(f"not a decimal: {raw!r}") from None


def _structure_enum(raw: Any, tp: type[enum.Enum]) -> enum.Enum:
    try:
        return tp(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a value of {tp.__name__}") from None


def _structure_instrument_id(raw: Any, _tp: Any) -> InstrumentId:
    if isinstance(raw, str):
        return InstrumentId.parse(raw)
    if isinstance(raw, dict) and set(raw) == {"venue", "market", "symbol"}:
        return InstrumentId(raw["venue"], Market(raw["market"]), raw["symbol"])
    raise ValueError(f"expected 'venue:market:symbol' or {{venue, market, symbol}}, got {raw!r}")


CODEC = Codec()
"""The process-wide codec every journal uses unless given another."""

register = CODEC.register
journaled = CODEC.journaled
encode = CODEC.encode
decode = CODEC.decode
