"""Performance metrics from a daily equity curve (returns on total capital).

Sharpe is annualised from daily simple returns with sqrt(365) (crypto trades every day); annual
return is the compound growth rate over the calendar span; max drawdown is a positive fraction.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["DAY_MS", "iso_day", "per_year", "summarize"]

DAY_MS = 86_400_000


def iso_day(ms: int) -> str:
    """``1672531200000`` -> ``"2023-01-01"``."""
    return str(np.datetime64(int(ms), "ms").astype("datetime64[D]"))


def summarize(day_ms: np.ndarray, equity: np.ndarray, base: float | None = None) -> dict[str, Any]:
    """Sharpe, annual return and volatility, max drawdown and Calmar of a daily equity curve.

    ``base`` is the equity before the first day (default: the first value, which then only
    serves as the starting point).
    """
    eq = np.asarray(equity, dtype=np.float64)
    if eq.size == 0:
        return {
            "sharpe": 0.0,
            "annual_return": 0.0,
            "annual_vol": 0.0,
            "max_drawdown": 0.0,
            "calmar": 0.0,
            "total_return": 0.0,
            "days": 0,
            "start": None,
            "end": None,
        }
    path = np.concatenate([[eq[0] if base is None else base], eq])
    rets = path[1:] / path[:-1] - 1.0
    if base is None:
        rets = rets[1:]
    n = rets.size
    mean = float(rets.mean()) if n else 0.0
    sd = float(rets.std(ddof=1)) if n > 1 else 0.0
    sharpe = mean / sd * math.sqrt(365.0) if sd > 0 else 0.0
    total = float(path[-1] / path[0] - 1.0)
    years = max(n, 1) / 365.0
    annual = (1.0 + total) ** (1.0 / years) - 1.0 if total > -1.0 else -1.0
    peak = np.maximum.accumulate(path)
    mdd = float(np.max(1.0 - path / peak))
    return {
        "sharpe": sharpe,
        "annual_return": annual,
        "annual_vol": sd * math.sqrt(365.0),
        "max_drawdown": mdd,
        "calmar": annual / mdd if mdd > 0 else (math.inf if annual > 0 else 0.0),
        "total_return": total,
        "days": int(n),
        "start": iso_day(int(day_ms[0])),
        "end": iso_day(int(day_ms[-1])),
    }


def per_year(day_ms: np.ndarray, equity: np.ndarray, base: float | None = None) -> dict[str, dict[str, Any]]:
    """:func:`summarize` for each calendar year, each measured from the previous year's last equity
    (the first year from ``base``)."""
    years = np.asarray(day_ms).astype("datetime64[ms]").astype("datetime64[Y]").astype(int) + 1970
    out: dict[str, dict[str, Any]] = {}
    for y in np.unique(years):
        idx = np.flatnonzero(years == y)
        b = float(equity[idx[0] - 1]) if idx[0] > 0 else base
        out[str(int(y))] = summarize(day_ms[idx], equity[idx], base=b)
    return out
