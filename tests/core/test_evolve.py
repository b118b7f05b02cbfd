"""The fast evolve returns what attrs.evolve returns, validators included."""

from __future__ import annotations

import attrs
import pytest

from fundarb.core.evolve import evolve
from tests.core import factories as f


@attrs.frozen
class _Checked:
    a: int = attrs.field(validator=attrs.validators.ge(0))
    b: str = "x"


@attrs.frozen
class _Private:
    _a: int
    b: int = 0


def test_same_result_as_attrs_evolve_for_positions() -> None:
    p = f.hedged()
    for changes in ({}, {"failed_attempts": 3}, {"reason": "r", "next_seq": 9}):
        assert evolve(p, **changes) == attrs.evolve(p, **changes)


def test_validators_still_run_and_unknown_names_fail() -> None:
    assert evolve(_Checked(1), a=2) == _Checked(2, "x")
    with pytest.raises(ValueError):
        evolve(_Checked(1), a=-1)
    with pytest.raises(TypeError):
        evolve(_Checked(1), c=1)


def test_classes_it_cannot_copy_positionally_fall_back() -> None:
    assert evolve(_Private(1), a=5) == _Private(5)
