"""fundarb.config: parsing, every problem listed at once, secrets redacted, live-mode refusal."""

from __future__ import annotations

import datetime
import pickle
import re
from decimal import Decimal
from pathlib import Path

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fundarb._secret import DatabaseUrl, Secret, redact_url
from fundarb.config import (
    VARIABLES,
    ApiCredentials,
    Config,
    ConfigError,
    ExecutionConfig,
    HostPort,
    HttpConfig,
    Mode,
    RiskConfig,
    SimConfig,
    StrategyConfig,
    VenueCredentials,
    config_as_env,
    config_as_json,
    load_config,
    variables_markdown,
)
from fundarb.core.model import Market

README = Path(__file__).resolve().parent.parent / "README.md"

LIVE_BINANCE = {
    "FUNDARB_MODE": "live",
    "FUNDARB_VENUES": "binance",
    "FUNDARB_BINANCE_API_KEY": "binance-key-0123456789",
    "FUNDARB_BINANCE_API_SECRET": "binance-secret-abcdefghij",
    "FUNDARB_LIVE_CONFIRM": "yes",
}


def problems_of(environ: dict[str, str]) -> dict[str, str]:
    """Variable name (without any echoed value) -> message, for an environment that must fail."""
    with pytest.raises(ConfigError) as info:
        load_config(environ)
    return {p.variable.split("=")[0]: p.message for p in info.value.problems}


# ------------------------------------------------------------------------------------------ success


def test_defaults() -> None:
    cfg = load_config({})
    assert cfg.mode is Mode.PAPER
    assert cfg.live_confirm is False
    assert cfg.venues == ("sim",)
    assert cfg.symbols == ("BTCUSDT", "ETHUSDT")
    assert cfg.database_url is None
    assert cfg.data_dir == Path("./var")
    assert cfg.http.bind == HostPort("127.0.0.1", 8080)
    assert cfg.http.admin_token is None
    assert cfg.log_level == "INFO"
    assert cfg.sim.speed == 1440.0
    assert cfg.sim.data is None
    assert cfg.sim.start == datetime.date(2023, 12, 21)
    assert cfg.sim.start_ms == 1703116800000  # 2023-12-21T00:00Z
    assert cfg.sim.seed == 1
    assert cfg.risk.capital == Decimal("100000")
    assert cfg.risk.leverage == Decimal(3)
    assert cfg.risk.max_position_notional == Decimal(20000)
    assert cfg.risk.max_open_positions == 4
    assert cfg.risk.daily_loss_limit == Decimal(2000)
    assert cfg.risk.stale_after == 10.0
    assert cfg.risk.min_liq_distance == Decimal("0.25")
    assert cfg.strategy.entry_apr == Decimal("0.10")
    assert cfg.strategy.exit_apr == Decimal("0.03")
    assert cfg.strategy.leg_a is Market.PERPETUAL
    assert cfg.strategy.flatten_on_exit is False
    assert cfg.execution.hedge_timeout == 5.0
    assert cfg.execution.order_timeout == 3.0
    assert cfg.execution.ws_watchdog == 10.0
    assert cfg.execution.status_interval == 5.0
    assert cfg.credentials.for_venue("binance") is None


def test_values_are_parsed_into_their_types() -> None:
    cfg = load_config(
        {
            "FUNDARB_SYMBOLS": " SOLUSDT , BTCUSDT ",
            "FUNDARB_HTTP_BIND": "[::1]:0",
            "FUNDARB_LEVERAGE": "2.5",
            "FUNDARB_MAX_OPEN_POSITIONS": "12",
            "FUNDARB_FLATTEN_ON_EXIT": "TRUE",
            "FUNDARB_LEG_A": "spot",
            "FUNDARB_SIM_START": "2024-02-29",
            "FUNDARB_SIM_SPEED": "0.5",
            "FUNDARB_HEDGE_TIMEOUT": "0.25",
            "FUNDARB_EXIT_APR": "-0.02",
            "FUNDARB_DATABASE_URL": "postgresql://bot:hunter2@db.internal:5432/fundarb",
            "FUNDARB_DATA_DIR": "/srv/fundarb",
            "HOME": "/root",  # variables outside FUNDARB_* are ignored
        }
    )
    assert cfg.symbols == ("SOLUSDT", "BTCUSDT")
    assert cfg.http.bind == HostPort("::1", 0)
    assert str(cfg.http.bind) == "[::1]:0"
    assert cfg.risk.leverage == Decimal("2.5")
    assert isinstance(cfg.risk.leverage, Decimal)
    assert cfg.risk.max_open_positions == 12
    assert cfg.strategy.flatten_on_exit is True
    assert cfg.strategy.leg_a is Market.SPOT
    assert cfg.sim.start == datetime.date(2024, 2, 29)
    assert cfg.sim.speed == 0.5
    assert cfg.execution.hedge_timeout == 0.25
    assert cfg.strategy.exit_apr == Decimal("-0.02")
    assert cfg.database_url is not None
    assert cfg.database_url.reveal() == "postgresql://bot:hunter2@db.internal:5432/fundarb"
    assert cfg.data_dir == Path("/srv/fundarb")


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("yes", True), ("On", True), ("0", False), ("no", False), ("off", False)])  # fmt: skip
def test_booleans(raw: str, expected: bool) -> None:
    assert load_config({"FUNDARB_FLATTEN_ON_EXIT": raw}).strategy.flatten_on_exit is expected


def test_empty_optional_counts_as_unset() -> None:
    cfg = load_config({"FUNDARB_DATABASE_URL": "", "FUNDARB_ADMIN_TOKEN": "  ", "FUNDARB_SIM_DATA": ""})
    assert cfg.database_url is None
    assert cfg.http.admin_token is None
    assert cfg.sim.data is None


def test_sim_data_must_be_a_directory(tmp_path: Path) -> None:
    assert load_config({"FUNDARB_SIM_DATA": str(tmp_path)}).sim.data == tmp_path
    assert "FUNDARB_SIM_DATA" in problems_of({"FUNDARB_SIM_DATA": str(tmp_path / "missing")})


def test_env_rendering_round_trips() -> None:
    environ = {
        "FUNDARB_SYMBOLS": "SOLUSDT",
        "FUNDARB_LEVERAGE": "1.5",
        "FUNDARB_HTTP_BIND": "0.0.0.0:9100",
        "FUNDARB_FLATTEN_ON_EXIT": "1",
        "FUNDARB_LEG_A": "spot",
        "FUNDARB_SIM_START": "2022-06-30",
        "FUNDARB_STALE_AFTER": "2.5",
    }
    cfg = load_config(environ)
    rendered = config_as_env(cfg)
    assert list(rendered) == [v.name for v in VARIABLES]
    assert load_config({k: v for k, v in rendered.items() if v}) == cfg


def test_test_suite_variables_are_reserved() -> None:
    load_config({"FUNDARB_TEST_DATABASE_URL": "postgresql://postgres@127.0.0.1/test"})


@given(st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(20), places=4))
def test_any_leverage_in_range_parses_exactly(leverage: Decimal) -> None:
    assert load_config({"FUNDARB_LEVERAGE": str(leverage)}).risk.leverage == leverage


@given(st.decimals(allow_nan=False, allow_infinity=False, places=3).filter(lambda d: d <= 0 or d > 20))
def test_any_leverage_out_of_range_is_refused(leverage: Decimal) -> None:
    assert problems_of({"FUNDARB_LEVERAGE": str(leverage)}) == {"FUNDARB_LEVERAGE": "must be in (0, 20]"}


# ------------------------------------------------------------------------------------------ failure


def test_every_invalid_variable_is_listed_at_once() -> None:
    environ = {
        "FUNDARB_MODE": "prod",
        "FUNDARB_VENUES": "sim,ftx",
        "FUNDARB_SYMBOLS": "btc-usdt",
        "FUNDARB_LEVERAGE": "50",
        "FUNDARB_CAPITAL": "NaN",
        "FUNDARB_MAX_OPEN_POSITIONS": "2.5",
        "FUNDARB_MAX_POSITION_NOTIONAL": "-1",
        "FUNDARB_HTTP_BIND": "localhost",
        "FUNDARB_SIM_START": "2023-13-01",
        "FUNDARB_SIM_SPEED": "inf",
        "FUNDARB_SIM_SEED": "-3",
        "FUNDARB_FLATTEN_ON_EXIT": "maybe",
        "FUNDARB_LOG_LEVEL": "LOUD",
        "FUNDARB_ORDER_TIMEOUT": "0",
        "FUNDARB_MIN_LIQ_DISTANCE": "1",
        "FUNDARB_LEG_A": "futures",
        "FUNDARB_DATABASE_URL": "mysql://u:pw@h/db",
        "FUNDARB_DAILY_LOSS_LIMIT": "",
    }
    problems = problems_of(environ)
    assert set(problems) == set(environ)
    assert problems["FUNDARB_LEVERAGE"] == "must be in (0, 20]"
    assert problems["FUNDARB_MODE"] == "must be one of paper, testnet, live"
    assert "ftx" in problems["FUNDARB_VENUES"]
    assert problems["FUNDARB_MAX_OPEN_POSITIONS"] == "must be a whole number"
    assert problems["FUNDARB_CAPITAL"] == "must be a finite number"
    assert "host:port" in problems["FUNDARB_HTTP_BIND"]
    assert "empty" in problems["FUNDARB_DAILY_LOSS_LIMIT"]


def test_error_message_lists_each_problem_on_its_own_line() -> None:
    with pytest.raises(ConfigError) as info:
        load_config({"FUNDARB_LEVERAGE": "0", "FUNDARB_SIM_SEED": "x"})
    text = str(info.value)
    assert text.startswith("invalid configuration (2 problems):")
    assert "\n  FUNDARB_LEVERAGE='0': must be in (0, 20]" in text
    assert "\n  FUNDARB_SIM_SEED='x': must be a whole number" in text
    assert isinstance(info.value, ValueError)


def test_unknown_variables_are_errors_with_a_hint() -> None:
    problems = problems_of({"FUNDARB_LEVERGE": "2", "FUNDARB_WHATEVER": "1", "FUNDARB_LEVERAGE": "50"})
    assert (
        problems["FUNDARB_LEVERGE"]
        == "unknown variable (did you mean FUNDARB_LEVERAGE?); it would be ignored"
    )
    assert problems["FUNDARB_WHATEVER"].startswith("unknown variable")
    assert "FUNDARB_LEVERAGE" in problems  # and the real one's problem is still reported


def test_cross_variable_rules() -> None:
    problems = problems_of(
        {"FUNDARB_ENTRY_APR": "0.05", "FUNDARB_EXIT_APR": "0.05", "FUNDARB_DAILY_LOSS_LIMIT": "200000"}
    )
    assert set(problems) == {"FUNDARB_EXIT_APR", "FUNDARB_DAILY_LOSS_LIMIT"}


def test_paper_mode_trades_only_the_simulator_and_sim_only_paper() -> None:
    assert set(problems_of({"FUNDARB_VENUES": "binance"})) == {"FUNDARB_VENUES"}
    assert set(problems_of({"FUNDARB_MODE": "testnet", "FUNDARB_VENUES": "sim,bybit"})) == {"FUNDARB_VENUES"}
    cfg = load_config({"FUNDARB_MODE": "testnet", "FUNDARB_VENUES": "bybit"})
    assert cfg.uses_testnet("bybit")


# ------------------------------------------------------------------------------------------ live mode


def test_live_mode_with_keys_and_confirmation_starts() -> None:
    cfg = load_config(LIVE_BINANCE)
    assert cfg.mode is Mode.LIVE
    creds = cfg.credentials.for_venue("binance")
    assert isinstance(creds, ApiCredentials)
    assert creds.key.reveal() == "binance-key-0123456789"
    assert creds.secret.reveal() == "binance-secret-abcdefghij"
    assert not cfg.uses_testnet("binance")


def test_live_mode_refuses_without_confirmation() -> None:
    for confirm in (None, "no", "0"):
        environ = {k: v for k, v in LIVE_BINANCE.items() if k != "FUNDARB_LIVE_CONFIRM"}
        if confirm is not None:
            environ["FUNDARB_LIVE_CONFIRM"] = confirm
        assert set(problems_of(environ)) == {"FUNDARB_LIVE_CONFIRM"}


def test_live_mode_refuses_without_the_keys_of_every_venue() -> None:
    environ = {**LIVE_BINANCE, "FUNDARB_VENUES": "binance,okx", "FUNDARB_OKX_API_KEY": "okx-key-0123456"}
    del environ["FUNDARB_BINANCE_API_SECRET"]
    problems = problems_of(environ)
    assert set(problems) == {"FUNDARB_BINANCE_API_SECRET", "FUNDARB_OKX_API_SECRET", "FUNDARB_OKX_PASSPHRASE"}
    assert problems["FUNDARB_OKX_PASSPHRASE"] == "required in live mode for venue okx"


def test_live_mode_refuses_testnet_endpoints_and_the_simulator() -> None:
    problems = problems_of({**LIVE_BINANCE, "FUNDARB_BINANCE_TESTNET": "1", "FUNDARB_VENUES": "binance,sim"})
    assert set(problems) == {"FUNDARB_BINANCE_TESTNET", "FUNDARB_VENUES"}


def test_okx_needs_its_passphrase() -> None:
    env = {
        "FUNDARB_MODE": "testnet",
        "FUNDARB_VENUES": "okx",
        "FUNDARB_OKX_API_KEY": "k",
        "FUNDARB_OKX_API_SECRET": "s",
    }
    assert load_config(env).credentials.for_venue("okx") is None
    creds = load_config({**env, "FUNDARB_OKX_PASSPHRASE": "p"}).credentials.for_venue("okx")
    assert creds is not None and creds.passphrase is not None and creds.passphrase.reveal() == "p"


# ------------------------------------------------------------------------------------------ secrets

SECRETS = {
    "FUNDARB_BINANCE_API_KEY": "AKIA-binance-key-visible",
    "FUNDARB_BINANCE_API_SECRET": "s3cr3t-binance-value",
    "FUNDARB_BYBIT_API_KEY": "bybit-key-value",
    "FUNDARB_BYBIT_API_SECRET": "bybit-secret-value",
    "FUNDARB_OKX_API_KEY": "okx-key-value",
    "FUNDARB_OKX_API_SECRET": "okx-secret-value",
    "FUNDARB_OKX_PASSPHRASE": "okx-passphrase-value",
    "FUNDARB_ADMIN_TOKEN": "admin-token-0123456789",
    "FUNDARB_DATABASE_URL": "postgresql://bot:hunter2pw@db:5432/fundarb",
}
SECRET_TEXTS = [v for k, v in SECRETS.items() if k != "FUNDARB_DATABASE_URL"] + ["hunter2pw"]


def test_secret_type_never_prints_its_value() -> None:
    s = Secret("hunter2")
    for text in (repr(s), str(s), f"{s}", f"{s!r}", f"{s:>20}", format(s, "s"), str([s]), str({"k": s})):
        assert "hunter2" not in text
    assert repr(s) == str(s) == "Secret('***')"
    assert s.reveal() == "hunter2"
    assert s == Secret("hunter2") and s != Secret("other")
    with pytest.raises(TypeError):
        pickle.dumps(s)
    with pytest.raises(AttributeError):
        s._value = "x"  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        vars(s)
    with pytest.raises(ValueError):
        Secret("")


def test_database_url_shows_only_a_redacted_form() -> None:
    url = DatabaseUrl("postgresql://bot:hunter2@db:5432/fundarb")
    assert repr(url) == "DatabaseUrl('postgresql://bot:***@db:5432/fundarb')"
    assert "hunter2" not in str(url)
    assert "hunter2" not in redact_url("postgresql://db/x?user=bot&password=hunter2")
    assert redact_url("postgresql://bot:pw@[::1]:5432/x") == "postgresql://bot:***@[::1]:5432/x"
    assert redact_url("postgresql://bot:pw@db:99999/x") == "***"  # unparsable: redact whole


def test_secrets_are_redacted_in_every_rendering_of_the_config() -> None:
    cfg = load_config({**SECRETS, "FUNDARB_MODE": "testnet", "FUNDARB_VENUES": "binance,bybit,okx"})
    outputs = [repr(cfg), str(cfg), str(config_as_env(cfg)), str(config_as_json(cfg))]
    outputs += [repr(attrs.asdict(cfg, recurse=True))]
    for text in outputs:
        for secret in SECRET_TEXTS:
            assert secret not in text
    env = config_as_env(cfg)
    assert env["FUNDARB_BINANCE_API_KEY"] == "***"
    assert env["FUNDARB_DATABASE_URL"] == "postgresql://bot:***@db:5432/fundarb"
    assert config_as_json(cfg)["credentials"]["okx_passphrase"] == "***"


def test_errors_never_echo_secret_values() -> None:
    environ = {
        "FUNDARB_ADMIN_TOKEN": "short-token",  # invalid: too short
        "FUNDARB_DATABASE_URL": "mysql://bot:hunter2pw@db/x",  # invalid scheme
        "FUNDARB_BINANCE_API_SECRTE": "typo-secret-value",  # unknown name: value may be a secret
    }
    with pytest.raises(ConfigError) as info:
        load_config(environ)
    text = str(info.value)
    for value in ("short-token", "hunter2pw", "typo-secret-value"):
        assert value not in text
    assert "FUNDARB_ADMIN_TOKEN: must be at least 16 characters" in text


# ------------------------------------------------------------------------------------------ the table


GROUPS = (HttpConfig, VenueCredentials, SimConfig, StrategyConfig, RiskConfig, ExecutionConfig)


def _leaf_fields(cls: type, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    for field in attrs.fields(cls):
        if field.type in GROUPS:
            out |= _leaf_fields(field.type, (*prefix, field.name))
        else:
            out.add((*prefix, field.name))
    return out


def test_table_covers_every_config_field_exactly_once() -> None:
    attrs.resolve_types(Config)
    paths = [v.path for v in VARIABLES]
    assert len(paths) == len(set(paths))
    assert set(paths) == _leaf_fields(Config)
    names = [v.name for v in VARIABLES]
    assert len(names) == len(set(names))
    for var in VARIABLES:
        assert re.fullmatch(r"FUNDARB_[A-Z0-9_]+", var.name)
        assert var.doc and var.kind
        assert not var.name.startswith("FUNDARB_TEST_")
    assert all(v.secret for v in VARIABLES if v.type in (Secret, DatabaseUrl))


def test_readme_table_matches_the_variables() -> None:
    text = README.read_text(encoding="utf-8")
    begin, end = (
        "<!-- BEGIN VARIABLES (generated: python -m fundarb config --markdown) -->",
        "<!-- END VARIABLES -->",
    )
    assert begin in text and end in text, "README.md lost its generated variables table markers"
    table = text.split(begin, 1)[1].split(end, 1)[0].strip("\n") + "\n"
    assert table == variables_markdown(), "README table is stale: paste `python -m fundarb config --markdown`"


def test_config_is_frozen() -> None:
    cfg = load_config({})
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        cfg.mode = Mode.LIVE  # type: ignore[misc]
    assert isinstance(cfg, Config)


def test_ops_env_example_lists_every_variable_and_is_valid() -> None:
    path = README.parent / "ops" / "fundarb.env.example"
    environ: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"not KEY=value: {line!r}"
            assert name not in environ, f"{name} twice"
            environ[name] = value
    assert set(environ) == {v.name for v in VARIABLES}
    assert all(environ[v.name] == "" for v in VARIABLES if v.secret), "the example must hold no secrets"
    assert load_config(environ).mode is Mode.PAPER


def test_binance_loopback_is_loopback_only_and_never_live() -> None:
    from fundarb.engine.venues import loopback_urls

    base = {
        "FUNDARB_MODE": "testnet",
        "FUNDARB_VENUES": "binance",
        "FUNDARB_BINANCE_API_KEY": "sim-key",
        "FUNDARB_BINANCE_API_SECRET": "sim-secret",
    }
    cfg = load_config({**base, "FUNDARB_BINANCE_LOOPBACK": "http://127.0.0.1:5000 ws://127.0.0.1:5001"})
    urls = loopback_urls(cfg.binance_loopback)
    assert urls.futures == "http://127.0.0.1:5000" and urls.spot_ws_api == "ws://127.0.0.1:5001/ws-api/v3"
    with pytest.raises(ConfigError, match="not a loopback address"):
        load_config({**base, "FUNDARB_BINANCE_LOOPBACK": "http://api.example.com:443 ws://127.0.0.1:1"})
    with pytest.raises(ConfigError, match="must be 'http"):
        load_config({**base, "FUNDARB_BINANCE_LOOPBACK": "127.0.0.1:5000"})
    live = {**base, "FUNDARB_MODE": "live", "FUNDARB_LIVE_CONFIRM": "yes"}
    with pytest.raises(ConfigError, match="live mode cannot trade a loopback"):
        load_config({**live, "FUNDARB_BINANCE_LOOPBACK": "http://127.0.0.1:5000 ws://127.0.0.1:5001"})
