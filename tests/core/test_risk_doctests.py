"""The examples in the risk modules' docstrings run and hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "fundarb.core.risk",
    "fundarb.core.risk_book",
    "fundarb.core.risk_modes",
    "fundarb.core.risk_monitors",
    "fundarb.core.breakers",
    "fundarb.core.risk_manager",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_there_are_examples_to_run() -> None:
    attempted = sum(doctest.testmod(importlib.import_module(n)).attempted for n in MODULES)
    assert attempted >= 4
