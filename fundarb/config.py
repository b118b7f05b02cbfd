"""Configuration: every setting comes from a ``FUNDARB_*`` environment variable.

One table, :data:`VARIABLES`, lists each variable with its type, default and a one-line doc. It
drives the parsing (cattrs structures each raw string into the field's type, then the variable's
range check runs), ``fundarb config`` and the README's table, so the three cannot drift.

:func:`load_config` never stops at the first problem: it raises one :class:`ConfigError` that
lists every invalid variable with the reason, every unknown ``FUNDARB_*`` name (a typo in a risk
limit must not fall back to the default silently) and every cross-variable rule that fails.
Secrets are :class:`~fundarb._secret.Secret` values and are never echoed, not even in errors.

Names starting with ``FUNDARB_TEST_`` are reserved for the test suite (``FUNDARB_TEST_DATABASE_URL``)
and ignored here.

>>> cfg = load_config({"FUNDARB_LEVERAGE": "2"})
>>> cfg.mode, cfg.venues, cfg.risk.leverage
(<Mode.PAPER: 'paper'>, ('sim',), Decimal('2'))
"""

import datetime
import difflib
import enum
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import cattrs

from fundarb._secret import REDACTED, DatabaseUrl, Secret
from fundarb.config_model import (
    REQUIRED_KEYS,
    ApiCredentials,
    Config,
    ExecutionConfig,
    HostPort,
    HttpConfig,
    Mode,
    RiskConfig,
    SimConfig,
    StrategyConfig,
    VenueCredentials,
)
from fundarb.core.errors import FundarbError
from fundarb.core.model import Market, TimeInForce

__all__ = [
    "VARIABLES",
    "ApiCredentials",
    "Config",
    "ConfigError",
    "ExecutionConfig",
    "HostPort",
    "HttpConfig",
    "Mode",
    "Problem",
    "RiskConfig",
    "Secret",
    "SimConfig",
    "StrategyConfig",
    "Variable",
    "VenueCredentials",
    "config_as_env",
    "config_as_json",
    "load_config",
    "variables_markdown",
]

PREFIX = "FUNDARB_"
#: names under this prefix belong to the test suite, not to the engine
RESERVED_PREFIX = "FUNDARB_TEST_"
#: venue names FUNDARB_VENUES accepts; "sim" is the simulated venue of paper mode
KNOWN_VENUES = ("sim", "binance", "bybit", "okx")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,30}$")
_HOST_RE = re.compile(r"^[A-Za-z0-9.\-]+$|^[0-9A-Fa-f:]+$")


# ---------------------------------------------------------------------------------------- the table


@attrs.frozen
class Variable:
    """One ``FUNDARB_*`` variable: where it goes in :class:`Config` and how it is checked."""

    name: str
    path: tuple[str, ...]  # attribute path in Config, e.g. ("risk", "leverage")
    type: Any  # cattrs structures the raw string into this; default None makes the field optional
    kind: str  # what the README says the type is
    default: str | None  # raw default; None means unset
    doc: str
    check: Callable[[Any], None] | None = None  # raises ValueError with the reason
    secret: bool = False  # never echo the value


def _between(
    lo: float, hi: float | None, *, lo_open: bool = True, hi_open: bool = False
) -> Callable[[Any], None]:
    """A check that the value lies in the interval (``hi=None``: no upper bound)."""
    if hi is None:
        text = f"{'>' if lo_open else '>='} {lo:g}"
    else:
        text = f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"

    def check(v: Any) -> None:
        if (v <= lo if lo_open else v < lo) or (hi is not None and (v >= hi if hi_open else v > hi)):
            raise ValueError(f"must be {text}")

    return check


def _names(allowed: tuple[str, ...] | None, pattern: re.Pattern[str] | None) -> Callable[[Any], None]:
    def check(value: tuple[str, ...]) -> None:
        if not value:
            raise ValueError("must name at least one")
        dupes = sorted({v for v in value if value.count(v) > 1})
        if dupes:
            raise ValueError(f"lists {', '.join(dupes)} more than once")
        bad = [v for v in value if (allowed and v not in allowed) or (pattern and not pattern.match(v))]
        if bad and allowed:
            raise ValueError(f"unknown {', '.join(bad)} (known: {', '.join(allowed)})")
        if bad:
            raise ValueError(f"{', '.join(bad)} not a symbol like BTCUSDT")

    return check


def _log_level(value: str) -> None:
    if value not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")


def _token(value: Secret) -> None:
    if len(value.reveal()) < 16:
        raise ValueError("must be at least 16 characters")


def _dir_exists(value: Path) -> None:
    if not value.is_dir():
        raise ValueError("is not a directory")


_SECONDS = _between(0, 3600)
_POSITIVE = _between(0, None)
_D, _B, _F, _SEC = "decimal", "0/1", "seconds", "secret"


def _loopback_urls(value: str) -> None:
    parts = value.split()
    if len(parts) != 2 or not parts[0].startswith("http://") or not parts[1].startswith("ws://"):
        raise ValueError(
            "must be 'http://HOST:PORT ws://HOST:PORT' (the first line `fundarb sim serve` prints)"
        )
    for url in parts:
        host = url.split("://", 1)[1].rsplit(":", 1)[0]
        if host not in ("127.0.0.1", "localhost", "[::1]"):
            raise ValueError(
                f"{host} is not a loopback address: only a local simulator may stand in for Binance"
            )


def _v(suffix: str, path: str, type_: Any, kind: str, default: str | None, doc: str, **kw: Any) -> Variable:
    return Variable(PREFIX + suffix, tuple(path.split(".")), type_, kind, default, doc, **kw)


#: every variable, in README order
# fmt: off
VARIABLES: tuple[Variable, ...] = (
    _v("MODE", "mode", Mode, "paper/testnet/live", "paper", "paper: simulated venue; testnet; live: real money"),
    _v("LIVE_CONFIRM", "live_confirm", bool, "yes/no", "no", "must be `yes` for live mode to start"),
    _v("VENUES", "venues", tuple[str, ...], "list", "sim", "venues to trade: sim, binance, bybit, okx",
       check=_names(KNOWN_VENUES, None)),
    _v("SYMBOLS", "symbols", tuple[str, ...], "list", "BTCUSDT,ETHUSDT", "symbols to trade",
       check=_names(None, _SYMBOL_RE)),
    _v("BINANCE_API_KEY", "credentials.binance_api_key", Secret, _SEC, None, "Binance API key",
       secret=True),
    _v("BINANCE_API_SECRET", "credentials.binance_api_secret", Secret, _SEC, None,
       "Binance API secret", secret=True),
    _v("BINANCE_TESTNET", "binance_testnet", bool, _B, "0", "use Binance's testnet endpoints (not in live mode)"),
    _v("BINANCE_LOOPBACK", "binance_loopback", str, "http://127.0.0.1:P ws://127.0.0.1:Q", None,
       "testnet mode only: trade a `fundarb sim serve --venue binance` at these loopback URLs",
       check=_loopback_urls),
    _v("BINANCE_WS_ORDERS", "binance_ws_orders", bool, _B, "1",
       "send Binance spot orders over the WebSocket API while its connection is up (else REST)"),
    _v("BYBIT_API_KEY", "credentials.bybit_api_key", Secret, _SEC, None, "Bybit API key", secret=True),
    _v("BYBIT_API_SECRET", "credentials.bybit_api_secret", Secret, _SEC, None, "Bybit API secret",
       secret=True),
    _v("OKX_API_KEY", "credentials.okx_api_key", Secret, _SEC, None, "OKX API key", secret=True),
    _v("OKX_API_SECRET", "credentials.okx_api_secret", Secret, _SEC, None, "OKX API secret",
       secret=True),
    _v("OKX_PASSPHRASE", "credentials.okx_passphrase", Secret, _SEC, None, "OKX API passphrase",
       secret=True),
    _v("DATABASE_URL", "database_url", DatabaseUrl, "postgresql:// URL", None,
       "PostgreSQL journal; unset: embedded SQLite under FUNDARB_DATA_DIR", secret=True),
    _v("DATA_DIR", "data_dir", Path, "path", "./var", "where local state (SQLite journal, reports) lives"),
    _v("HTTP_BIND", "http.bind", HostPort, "host:port", "127.0.0.1:8080",
       "operator HTTP endpoint: /healthz /readyz /metrics /positions"),
    _v("ADMIN_TOKEN", "http.admin_token", Secret, _SEC, None,
       "bearer token for operator actions (>= 16 characters)", check=_token, secret=True),
    _v("LOG_LEVEL", "log_level", str, "level", "INFO", "DEBUG, INFO, WARNING, ERROR or CRITICAL",
       check=_log_level),
    _v("SIM_SPEED", "sim.speed", float, "number", "1440", "simulated seconds per wall-clock second",
       check=_POSITIVE),
    _v("SIM_DATA", "sim.data", Path, "path", None, "market data directory; unset: the vendored data",
       check=_dir_exists),
    _v("SIM_START", "sim.start", datetime.date, "YYYY-MM-DD", "2023-12-21", "simulated start date (UTC); the default is a high-funding stretch of the vendored data, so a first paper run trades within a minute"),
    _v("SIM_SEED", "sim.seed", int, "integer", "1", "random seed of the simulator",
       check=_between(0, None, lo_open=False)),
    _v("CAPITAL", "risk.capital", Decimal, _D, "100000", "capital in USDT", check=_POSITIVE),
    _v("LEVERAGE", "risk.leverage", Decimal, _D, "3", "perpetual leg leverage", check=_between(0, 20)),
    _v("MAX_POSITION_NOTIONAL", "risk.max_position_notional", Decimal, _D, "20000",
       "largest notional per position, USDT", check=_POSITIVE),
    _v("MAX_OPEN_POSITIONS", "risk.max_open_positions", int, "integer", "4", "most positions open at once",
       check=_between(1, 1000, lo_open=False)),
    _v("DAILY_LOSS_LIMIT", "risk.daily_loss_limit", Decimal, _D, "2000",
       "USDT lost in a UTC day that stops new entries", check=_POSITIVE),
    _v("ENTRY_APR", "strategy.entry_apr", Decimal, _D, "0.10", "enter when expected net carry APR exceeds this",
       check=_between(0, 10)),
    _v("EXIT_APR", "strategy.exit_apr", Decimal, _D, "0.03", "exit when it falls below this (< entry APR)",
       check=_between(-10, 10, lo_open=False)),
    _v("HEDGE_TIMEOUT", "execution.hedge_timeout", float, _F, "5.0", "time for leg B to hedge leg A",
       check=_SECONDS),
    _v("ORDER_TIMEOUT", "execution.order_timeout", float, _F, "3.0", "deadline of one venue order call",
       check=_SECONDS),
    _v("LEG_A", "strategy.leg_a", Market, "perp/spot", "perp", "the leg opened first"),
    _v("ENTRY_TIF", "strategy.entry_tif", TimeInForce, "IOC/POST_ONLY/GTC", "IOC",
       "leg A's entry: IOC at the touch, or POST_ONLY/GTC resting at the passive price"),
    _v("ENTRY_TIMEOUT", "execution.entry_timeout", float, _F, "30",
       "a resting leg-A entry still unfilled after this is cancelled (and any fill unwound)", check=_SECONDS),
    _v("FLATTEN_ON_EXIT", "strategy.flatten_on_exit", bool, _B, "0", "close every position on shutdown"),
    _v("STALE_AFTER", "risk.stale_after", float, _F, "10", "market data older than this is stale",
       check=_SECONDS),
    _v("WS_WATCHDOG", "execution.ws_watchdog", float, _F, "10", "ping a silent websocket after this",
       check=_SECONDS),
    _v("STATUS_INTERVAL", "execution.status_interval", float, _F, "5", "status log / metrics refresh interval",
       check=_SECONDS),
    _v("MIN_LIQ_DISTANCE", "risk.min_liq_distance", Decimal, _D, "0.25",
       "smallest distance to liquidation, fraction of mark", check=_between(0, 1, hi_open=True)),
)
# fmt: on

_BY_NAME = {v.name: v for v in VARIABLES}
_BY_PATH = {v.path: v for v in VARIABLES}


# ------------------------------------------------------------------------------------- the converter


def _number(convert: Callable[[str], Any], message: str) -> Callable[[str], Any]:
    def parse(raw: str) -> Any:
        try:
            value = convert(raw)
        except (ValueError, TypeError, ArithmeticError):
            raise ValueError(message) from None
        if isinstance(value, Decimal | float) and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    return parse


def _bool(raw: str) -> bool:
    text = raw.lower()
    if text not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise ValueError("must be one of 1/0, yes/no, true/false, on/off")
    return text in ("1", "true", "yes", "on")


def _enum(raw: Any, type_: type[enum.Enum]) -> enum.Enum:
    for member in type_:
        if raw is member or str(member.value).lower() == str(raw).lower():
            return member
    raise ValueError(f"must be one of {', '.join(str(m.value) for m in type_)}")


def _names_list(raw: Any, _: Any) -> tuple[str, ...]:
    if isinstance(raw, tuple):
        return raw
    return tuple(part.strip() for part in str(raw).split(",") if part.strip())


def _hostport(raw: str) -> HostPort:
    host, sep, port = raw.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not _HOST_RE.match(host) or not port.isdigit() or int(port) > 65535:
        raise ValueError("must be host:port, e.g. 127.0.0.1:8080")
    return HostPort(host, int(port))


def _database_url(raw: str) -> DatabaseUrl:
    scheme, sep, rest = raw.partition("://")
    if not sep or scheme not in ("postgresql", "postgres") or not rest:
        raise ValueError("must be a postgresql://user:password@host:port/dbname URL")
    return DatabaseUrl(raw)


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter()

    def parse_with(type_: type, parse: Callable[[str], Any]) -> None:
        # idempotent: load_config structures already-parsed values into the Config tree
        conv.register_structure_hook(type_, lambda raw, _: raw if isinstance(raw, type_) else parse(str(raw)))

    parse_with(Decimal, _number(Decimal, "must be a decimal number"))
    parse_with(float, _number(float, "must be a number"))
    parse_with(int, _number(lambda raw: int(raw, 10), "must be a whole number"))
    parse_with(bool, _bool)
    parse_with(HostPort, _hostport)
    parse_with(datetime.date, _number(datetime.date.fromisoformat, "must be a date YYYY-MM-DD"))
    parse_with(DatabaseUrl, _database_url)
    parse_with(Secret, Secret)
    parse_with(Path, Path)
    conv.register_structure_hook_func(lambda t: t == tuple[str, ...], _names_list)
    conv.register_structure_hook_func(lambda t: isinstance(t, type) and issubclass(t, enum.Enum), _enum)
    for type_, unstructure in ((Decimal, str), (Path, str), (HostPort, str), (datetime.date, str)):
        conv.register_unstructure_hook(type_, unstructure)
    conv.register_unstructure_hook_func(
        lambda t: isinstance(t, type) and issubclass(t, Secret),
        lambda v: v.redacted if isinstance(v, DatabaseUrl) else REDACTED,
    )
    return conv


_CONVERTER = _make_converter()


# ------------------------------------------------------------------------------------------ loading


@attrs.frozen
class Problem:
    """One reason the configuration is invalid, tied to the variable to fix."""

    variable: str
    message: str

    def __str__(self) -> str:
        return f"{self.variable}: {self.message}"


class ConfigError(FundarbError, ValueError):
    """The environment does not describe a valid configuration; :attr:`problems` lists every reason."""

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        n = len(self.problems)
        super().__init__(f"invalid configuration ({n} problem{'s' * (n != 1)}):\n{lines}")


def _parse_one(var: Variable, raw: str | None) -> Any:
    """Structure one variable's raw string (or default) and run its check. Raises ValueError."""
    if raw is not None:
        raw = raw.strip()
        if raw == "":
            if var.default is not None:
                raise ValueError(f"is empty (unset it to use the default {var.default})")
            raw = None  # an empty optional variable counts as unset, as in env files
    if raw is None:
        raw = var.default
    if raw is None:
        return None
    value = _CONVERTER.structure(raw, var.type)
    if var.check is not None:
        var.check(value)
    return value


def _cross_checks(values: Mapping[str, Any]) -> list[Problem]:
    """Rules across variables; each runs only if the variables it reads parsed."""
    problems: list[Problem] = []

    def have(*names: str) -> bool:
        return all(PREFIX + n in values for n in names)

    def get(name: str) -> Any:
        return values[PREFIX + name]

    def add(name: str, message: str) -> None:
        problems.append(Problem(PREFIX + name, message))

    if have("ENTRY_APR", "EXIT_APR") and get("EXIT_APR") >= get("ENTRY_APR"):
        add("EXIT_APR", f"must be below FUNDARB_ENTRY_APR ({get('ENTRY_APR')})")
    if have("CAPITAL", "DAILY_LOSS_LIMIT") and get("DAILY_LOSS_LIMIT") > get("CAPITAL"):
        add("DAILY_LOSS_LIMIT", f"must not exceed FUNDARB_CAPITAL ({get('CAPITAL')})")
    if not have("MODE", "VENUES"):
        return problems
    mode, venues = get("MODE"), get("VENUES")
    if mode is Mode.PAPER and set(venues) != {"sim"}:
        add("VENUES", "paper mode trades only the simulated venue: set FUNDARB_VENUES=sim")
    if mode is not Mode.PAPER and "sim" in venues:
        add("VENUES", f"sim is the paper-mode venue; {mode.value} mode needs real venues")
    if mode is Mode.LIVE:
        if have("LIVE_CONFIRM") and not get("LIVE_CONFIRM"):
            add("LIVE_CONFIRM", "live mode trades real money: set FUNDARB_LIVE_CONFIRM=yes to confirm")
        if have("BINANCE_TESTNET") and get("BINANCE_TESTNET"):
            add(
                "BINANCE_TESTNET",
                "live mode cannot use testnet endpoints: unset it or use FUNDARB_MODE=testnet",
            )
        if have("BINANCE_LOOPBACK") and get("BINANCE_LOOPBACK"):
            add("BINANCE_LOOPBACK", "live mode cannot trade a loopback simulator: use FUNDARB_MODE=testnet")
        for venue in venues:
            for field in REQUIRED_KEYS.get(venue, ()):
                name = field.upper()
                if have(name) and get(name) is None:
                    add(name, f"required in live mode for venue {venue}")
    return problems


def load_config(environ: Mapping[str, str]) -> Config:
    """Build the :class:`Config` from ``environ`` (usually ``os.environ``).

    Raises :class:`ConfigError` listing every problem at once: invalid values, unknown
    ``FUNDARB_*`` names, and failed cross-variable rules (live mode without keys or confirmation).
    """
    problems: list[Problem] = []
    for name in sorted(environ):
        if name.startswith(PREFIX) and name not in _BY_NAME and not name.startswith(RESERVED_PREFIX):
            close = difflib.get_close_matches(name, _BY_NAME, n=1, cutoff=0.75)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append(Problem(name, f"unknown variable{hint}; it would be ignored"))

    values: dict[str, Any] = {}
    for var in VARIABLES:
        raw = environ.get(var.name)
        try:
            values[var.name] = _parse_one(var, raw)
        except ValueError as exc:
            shown = "" if var.secret or raw is None else f"={raw!r}"
            problems.append(Problem(f"{var.name}{shown}", str(exc)))

    problems.extend(_cross_checks(values))
    if problems:
        raise ConfigError(problems)

    tree: dict[str, Any] = {}
    for var in VARIABLES:
        node = tree
        for key in var.path[:-1]:
            node = node.setdefault(key, {})
        node[var.path[-1]] = values[var.name]
    return _CONVERTER.structure(tree, Config)


# ---------------------------------------------------------------------------------------- rendering


def _value_at(config: Config, path: tuple[str, ...]) -> Any:
    value: Any = config
    for key in path:
        value = getattr(value, key)
    return value


def _render(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, DatabaseUrl):
        return value.redacted
    if isinstance(value, Secret):
        return REDACTED
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def config_as_env(config: Config) -> dict[str, str]:
    """Each variable's effective value as it would be written in an env file; secrets are ``***``.

    Unset optional variables map to ``""``. Without secrets, feeding this back to
    :func:`load_config` gives the same configuration.
    """
    return {var.name: _render(_value_at(config, var.path)) for var in VARIABLES}


def config_as_json(config: Config) -> dict[str, Any]:
    """The configuration as plain JSON-able data (cattrs unstructure), secrets redacted."""
    data: dict[str, Any] = _CONVERTER.unstructure(config)
    return data


def variables_markdown() -> str:
    """The README's table of variables, rendered from :data:`VARIABLES`."""
    rows = ["| Variable | Type | Default | Meaning |", "|---|---|---|---|"]
    for var in VARIABLES:
        default = f"`{var.default}`" if var.default is not None else "unset"
        doc = var.doc.replace("|", "\\|")
        rows.append(f"| `{var.name}` | {var.kind} | {default} | {doc} |")
    return "\n".join(rows) + "\n"
