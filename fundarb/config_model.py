"""The configuration's value types: frozen attrs groups that :func:`fundarb.config.load_config`
builds from the ``FUNDARB_*`` environment (the table and the parsing live in :mod:`fundarb.config`,
which re-exports these names)."""

import datetime
import enum
from decimal import Decimal
from pathlib import Path

import attrs

from fundarb._secret import DatabaseUrl, Secret
from fundarb.core.model import Market, TimeInForce

__all__ = [
    "REQUIRED_KEYS",
    "ApiCredentials",
    "Config",
    "ExecutionConfig",
    "HostPort",
    "HttpConfig",
    "Mode",
    "RiskConfig",
    "SimConfig",
    "StrategyConfig",
    "VenueCredentials",
]


class Mode(enum.Enum):
    """How the engine trades: ``paper`` on the simulated venue, a venue ``testnet``, or ``live``."""

    PAPER = "paper"
    TESTNET = "testnet"
    LIVE = "live"


# ---------------------------------------------------------------------------------------------- values


@attrs.frozen
class HostPort:
    """A ``host:port`` to bind; ``[::1]:8080`` for IPv6."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@attrs.frozen
class ApiCredentials:
    """One venue's API credentials; ``passphrase`` only for venues that use one (OKX)."""

    key: Secret
    secret: Secret
    passphrase: Secret | None = None


@attrs.frozen(kw_only=True)
class VenueCredentials:
    """API keys of the real venues. Each is a :class:`Secret` or ``None`` when unset."""

    binance_api_key: Secret | None = None
    binance_api_secret: Secret | None = None
    bybit_api_key: Secret | None = None
    bybit_api_secret: Secret | None = None
    okx_api_key: Secret | None = None
    okx_api_secret: Secret | None = None
    okx_passphrase: Secret | None = None

    def for_venue(self, venue: str) -> ApiCredentials | None:
        """The complete credentials of ``venue``, or ``None`` if any required part is unset."""
        parts = [getattr(self, field) for field in REQUIRED_KEYS.get(venue, ())]
        return None if not parts or None in parts else ApiCredentials(*parts)


#: the credential fields each venue needs (live mode refuses to start without them)
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "binance": ("binance_api_key", "binance_api_secret"),
    "bybit": ("bybit_api_key", "bybit_api_secret"),
    "okx": ("okx_api_key", "okx_api_secret", "okx_passphrase"),
}


@attrs.frozen(kw_only=True)
class HttpConfig:
    """The operator HTTP endpoint (health, readiness, metrics, positions)."""

    bind: HostPort
    admin_token: Secret | None = None


@attrs.frozen(kw_only=True)
class SimConfig:
    """The simulated venue of paper mode."""

    speed: float  # simulated seconds per wall-clock second
    data: Path | None  # None: the data vendored in the package
    start: datetime.date
    seed: int

    @property
    def start_ms(self) -> int:
        """:attr:`start` at 00:00 UTC, in ms since the epoch."""
        midnight = datetime.datetime.combine(self.start, datetime.time(), tzinfo=datetime.UTC)
        return int(midnight.timestamp()) * 1000


@attrs.frozen(kw_only=True)
class StrategyConfig:
    """When to enter and leave a carry position, and how to open it."""

    entry_apr: Decimal
    exit_apr: Decimal
    leg_a: Market  # the leg opened first; the other is the hedge
    entry_tif: TimeInForce  # IOC at the touch, or resting (POST_ONLY/GTC) at the passive price
    flatten_on_exit: bool


@attrs.frozen(kw_only=True)
class RiskConfig:
    """Limits. Money is in USDT."""

    capital: Decimal
    leverage: Decimal
    max_position_notional: Decimal
    max_open_positions: int
    daily_loss_limit: Decimal
    stale_after: float  # seconds without market data before it counts as stale
    min_liq_distance: Decimal  # fraction of mark price


@attrs.frozen(kw_only=True)
class ExecutionConfig:
    """Deadlines and intervals of the Trio shell, in seconds."""

    hedge_timeout: float
    entry_timeout: float
    order_timeout: float
    ws_watchdog: float
    status_interval: float


@attrs.frozen(kw_only=True)
class Config:
    """The whole configuration. Build it with :func:`load_config`."""

    mode: Mode
    live_confirm: bool
    venues: tuple[str, ...]
    symbols: tuple[str, ...]
    binance_testnet: bool
    binance_loopback: str | None = None  # "http://127.0.0.1:P ws://127.0.0.1:Q": a local simulator
    binance_ws_orders: bool = True  # spot orders over the WebSocket API when it is connected
    database_url: DatabaseUrl | None  # None: the embedded SQLite journal under data_dir
    data_dir: Path
    log_level: str
    http: HttpConfig
    credentials: VenueCredentials
    sim: SimConfig
    strategy: StrategyConfig
    risk: RiskConfig
    execution: ExecutionConfig

    def uses_testnet(self, venue: str) -> bool:
        """Whether ``venue`` must be reached on its testnet endpoints."""
        return self.mode is Mode.TESTNET or (venue == "binance" and self.binance_testnet)
