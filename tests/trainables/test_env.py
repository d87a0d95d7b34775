"""Tests for trainables.env: each TensorTrade 1.0.4 defect TradeTune fixes, shown on both envs.

Every test asserts TradingEnv's behaviour and, where that makes the point, the plain tutorial
env (``tensortrade.env.default.create`` with PBR and BSH) doing the wrong thing, so a test
fails if TradeTune's fix breaks and shows that the defect it guards against is real.
"""
from __future__ import annotations

import logging
import math
import random
import time
from decimal import Decimal

import numpy as np
import pytest

import trainables.env  # noqa: F401  (installs the tensortrade import shim first)
from tensortrade.env import default as tt_default  # noqa: E402
from tensortrade.env.default.actions import BSH  # noqa: E402
from tensortrade.env.default.rewards import PBR  # noqa: E402
from tensortrade.feed.core import DataFeed, Stream  # noqa: E402
from tensortrade.oms.exchanges import Exchange, ExchangeOptions  # noqa: E402
from tensortrade.oms.instruments import BTC, USD  # noqa: E402
from tensortrade.oms.services.execution.simulated import execute_order  # noqa: E402
from tensortrade.oms.wallets import Portfolio, Wallet  # noqa: E402
from trainables.synthetic import synthetic_bars  # noqa: E402
from trainables.env import ENV_DEFAULTS, TradingEnv, make_env  # noqa: E402

SYN = {"synthetic": {"n_bars": 1500, "seed": 7}}
LONG_SYN = {"synthetic": {"n_bars": 10_000, "seed": 42},
            "splits": {"train": 0.9, "val": 0.05, "test": 0.05}}


def make(**settings) -> TradingEnv:
    return TradingEnv({"data": SYN, "window_size": 5, **settings})


def plain_env(closes, features=None, *, commission: float = 0.001, window_size: int = 5,
              **kwargs):
    """The tutorial's env: Stream prices, Exchange with commission, wallets, PBR, BSH, create().

    ``features`` (n_bars x k) is the observation feed; by default the bar number, so an
    observation says which bar it shows.
    """
    closes = [float(p) for p in closes]
    if features is None:
        features = np.arange(len(closes), dtype=float)[:, None]
    price = Stream.source(closes, dtype="float").rename("USD-BTC")
    exchange = Exchange("exchange", service=execute_order,
                        options=ExchangeOptions(commission=commission))(price)
    cash = Wallet(exchange, 10_000 * USD)
    asset = Wallet(exchange, 0 * BTC)
    portfolio = Portfolio(USD, [cash, asset])
    feed = DataFeed([Stream.source([float(v) for v in features[:, i]], dtype="float")
                     .rename(f"f{i}") for i in range(features.shape[1])])
    reward_scheme = PBR(price=price)
    action_scheme = BSH(cash=cash, asset=asset).attach(reward_scheme)
    env = tt_default.create(portfolio=portfolio, action_scheme=action_scheme,
                            reward_scheme=reward_scheme, feed=feed, window_size=window_size,
                            **kwargs)
    return env, cash, asset


def split_closes(env: TradingEnv) -> np.ndarray:
    return env.market.bars["close"].to_numpy()[env.first_bar:env.end_bar]


def window_at(env: TradingEnv, bar: int) -> np.ndarray:
    return env.market.features.to_numpy(dtype=np.float32)[bar - env.window_size + 1:bar + 1]


# -- position in the observation -------------------------------------------------------------

def test_position_is_the_last_observation_element_and_flips_with_trades():
    env = make(split="val")
    n_features = env.market.features.shape[1]
    obs, info = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape == (5 * n_features + 1,)
    assert obs[-1] == 0.0 and info["position"] == 0

    seen = []
    for action in (1, 1, 0, 0, 1):
        obs, _, _, _, info = env.step(action)
        seen.append((obs[-1], info["position"]))
    assert seen == [(1.0, 1), (1.0, 1), (0.0, 0), (0.0, 0), (1.0, 1)]

    # Plain TensorTrade: the observation after a buy equals the one after staying in cash.
    bought, _, bought_asset = plain_env(split_closes(env)[:50])
    stayed, _, stayed_asset = plain_env(split_closes(env)[:50])
    bought.reset()
    stayed.reset()
    obs_bought = bought.step(1)[0]
    obs_stayed = stayed.step(0)[0]
    assert bought_asset.balance.as_float() > 0 and stayed_asset.balance.as_float() == 0
    np.testing.assert_array_equal(obs_bought, obs_stayed)


# -- rewards ---------------------------------------------------------------------------------

def test_staying_in_cash_earns_exactly_zero_log_return_reward():
    env = make(split="val")
    assert env.settings["reward"] == "log_return"
    env.reset(seed=0)
    rewards = [env.step(0)[1] for _ in range(30)]
    assert rewards == [0.0] * 30

    # Plain PBR pays -(price change) while in cash, a fake short (0 only on its very first step).
    closes = split_closes(env)[:40]
    plain, _, _ = plain_env(closes)
    plain.reset()
    plain_rewards = [plain.step(0)[1] for _ in range(30)]
    assert plain_rewards[0] == 0
    np.testing.assert_allclose(plain_rewards[1:], -np.diff(closes)[1:30])
    assert all(r != 0 for r in plain_rewards[1:])


def test_trade_rewards_are_log_returns_of_net_worth_net_of_commission():
    commission = 0.01
    env = make(split="val", commission=commission)
    env.reset(seed=0)
    p = split_closes(env)
    before = env.net_worth
    _, buy_reward, _, _, info = env.step(1)
    assert buy_reward == pytest.approx(math.log(info["net_worth"] / before), abs=1e-12)
    # The price moved p0 -> p1 and a 1% commission was paid: log(p1/p0) + log(1 - c).
    assert buy_reward == pytest.approx(math.log(p[1] / p[0]) + math.log(1 - commission), abs=2e-6)
    _, hold_reward, _, _, _ = env.step(1)
    assert hold_reward == pytest.approx(math.log(p[2] / p[1]), abs=1e-9)
    before = env.net_worth
    _, sell_reward, _, _, info = env.step(0)
    assert sell_reward == pytest.approx(math.log(info["net_worth"] / before), abs=1e-12)
    assert sell_reward == pytest.approx(math.log(1 - commission), abs=2e-6)

    # Plain PBR does not see commission at all: same rewards at 0% and at 5%.
    cheap, _, _ = plain_env(p[:20], commission=0.0)
    dear, _, dear_asset = plain_env(p[:20], commission=0.05)
    cheap.reset()
    dear.reset()
    actions = (1, 1, 0, 1, 0, 0, 1)
    cheap_rewards = [cheap.step(a)[1] for a in actions]
    dear_rewards = [dear.step(a)[1] for a in actions]
    assert cheap_rewards == dear_rewards
    assert dear.action_scheme.portfolio.net_worth < 0.85 * 10_000  # commission was really paid


def _price_scaled_csvs(tmp_path):
    bars = synthetic_bars(1500, seed=11)
    scaled = bars.copy()
    for column in ("open", "high", "low", "close"):
        scaled[column] = scaled[column] * 100.0
    paths = tmp_path / "base.csv", tmp_path / "scaled.csv"
    bars.to_csv(paths[0])
    scaled.to_csv(paths[1])
    return paths


def _rollout(env: TradingEnv, actions) -> tuple[list[float], list[np.ndarray]]:
    obs, _ = env.reset(seed=0)
    rewards, observations = [], [obs]
    for action in actions:
        obs, reward, _, _, _ = env.step(action)
        rewards.append(reward)
        observations.append(obs)
    return rewards, observations


def test_log_return_reward_is_scale_free_and_pbr_is_selectable_and_dollar_scaled(tmp_path):
    base_csv, scaled_csv = _price_scaled_csvs(tmp_path)
    actions = np.random.default_rng(0).integers(0, 2, size=150)

    base = TradingEnv({"data": {"path": str(base_csv)}, "split": "val"})
    scaled = TradingEnv({"data": {"path": str(scaled_csv)}, "split": "val"})
    np.testing.assert_allclose(split_closes(scaled), 100 * split_closes(base), rtol=1e-12)
    base_rewards, base_obs = _rollout(base, actions)
    scaled_rewards, scaled_obs = _rollout(scaled, actions)
    assert np.count_nonzero(base_rewards) > 50
    # Equal up to TensorTrade's rounding of prices to cents and BTC to 8 decimals.
    np.testing.assert_allclose(scaled_rewards, base_rewards, rtol=0, atol=1e-5)
    np.testing.assert_allclose(np.array(scaled_obs), np.array(base_obs), rtol=1e-4, atol=1e-5)

    base_pbr = TradingEnv({"data": {"path": str(base_csv)}, "split": "val", "reward": "pbr"})
    scaled_pbr = TradingEnv({"data": {"path": str(scaled_csv)}, "split": "val", "reward": "pbr"})
    pbr_rewards, _ = _rollout(base_pbr, actions)
    scaled_pbr_rewards, _ = _rollout(scaled_pbr, actions)
    np.testing.assert_allclose(scaled_pbr_rewards, 100 * np.array(pbr_rewards), rtol=1e-9)
    # The tutorial's PBR: price change times +1 while long and -1 (a fake short) while in cash.
    p = split_closes(base_pbr)
    sign = np.where(actions == 1, 1.0, -1.0)
    np.testing.assert_allclose(pbr_rewards, sign * np.diff(p)[:len(actions)], rtol=1e-12)


# -- end of episode --------------------------------------------------------------------------

def test_running_out_of_data_truncates_and_a_loss_limit_terminates():
    env = make(split="val", max_allowed_loss=None)
    env.reset(seed=0)
    steps, terminated, truncated = 0, False, False
    flags = []
    while not (terminated or truncated):
        _, _, terminated, truncated, info = env.step(steps % 2)
        steps += 1
        flags.append((terminated, truncated))
    assert (terminated, truncated) == (False, True)
    assert set(flags[:-1]) == {(False, False)}
    assert steps == env.end_bar - env.first_bar - 1 and info["bar"] == env.end_bar - 1

    # The loss limit is a real terminal: 20% commission and a 30% limit end it on the sell.
    losing = make(split="val", commission=0.2, max_allowed_loss=0.3)
    losing.reset(seed=0)
    assert losing.step(1)[2:4] == (False, False)
    assert losing.step(0)[2:4] == (True, False)

    # Plain TensorTrade calls the end of the data a terminal state.
    plain, _, _ = plain_env(split_closes(env)[:30])
    plain.reset()
    plain_flags = [plain.step(0)[2:4] for _ in range(29)]  # 30 bars: 29 steps
    assert plain_flags[-1] == (True, False)
    assert set(plain_flags[:-1]) == {(False, False)}


def test_a_portfolio_ground_to_nothing_ends_the_episode_instead_of_crashing():
    # 1% per trade on every bar: TensorTrade's cent rounding eventually leaves exactly 0.
    env = TradingEnv({"data": LONG_SYN, "commission": 0.01, "max_allowed_loss": None})
    env.reset(seed=0)
    rewards, terminated, truncated, step = [], False, False, 0
    while not (terminated or truncated):
        _, reward, terminated, truncated, info = env.step((step + 1) % 2)
        rewards.append(reward)
        step += 1
    assert (terminated, truncated) == (True, False)
    assert info["net_worth"] == 0.0 and info["bar"] < env.end_bar - 1
    assert all(math.isfinite(r) for r in rewards) and rewards[-1] == pytest.approx(math.log(1e-6))


# -- episode starts --------------------------------------------------------------------------

def _start(env: TradingEnv, seed: int | None) -> int:
    obs, info = env.reset(seed=seed)
    assert info["bar"] == env.bar
    np.testing.assert_array_equal(obs[:-1], window_at(env, env.bar).ravel())
    return env.bar


def test_random_start_is_seeded_and_never_carries_over_between_resets():
    env = make(random_start=True)
    one = _start(env, 1)
    assert _start(env, 1) == one
    assert _start(env, 2) != one
    for _ in range(40):  # an episode in between must not shift the next start either
        env.step(1)
    assert _start(env, 1) == one
    assert env.net_worth == env.initial_cash and env.position == 0

    starts = {_start(env, seed) for seed in range(30)}
    assert len(starts) > 20
    latest = env.end_bar - 2 - (env.end_bar - env.first_bar) // 2
    assert min(starts) >= env.first_bar and max(starts) <= latest

    capped = make(random_start=True, max_episode_steps=100)
    capped_starts = {_start(capped, seed) for seed in range(30)}
    assert max(capped_starts) <= capped.end_bar - 2 - 100
    assert max(capped_starts) > latest  # the cap lets starts reach later into the split


def test_without_random_start_every_episode_starts_at_the_splits_first_bar():
    val = make(split="val")
    for seed in (None, 0, 1, 2, 12345):
        assert _start(val, seed) == val.market.splits["val"][0]
        val.step(1)
    train = make(split="train", window_size=7)
    assert train.market.splits["train"][0] == 0
    # The first 6 bars of the data cannot fill a 7-bar window; nothing earlier exists.
    assert {_start(train, seed) for seed in (None, 0, 3)} == {6}


def test_plain_tensortrade_random_start_ignores_the_seed_and_sticks():
    random.seed(0)
    plain, _, _ = plain_env(100 + np.arange(200.0), window_size=1, random_start_pct=0.5)
    first = plain.reset(seed=1)[0][-1, 0]
    second = plain.reset(seed=1)[0][-1, 0]
    assert first != second  # same seed, different start: the seed is ignored
    plain.random_start_pct = 0.0
    assert plain.reset(seed=1)[0][-1, 0] == second  # the old offset sticks, not bar 0


# -- isolation and speed ---------------------------------------------------------------------

def _balances(env: TradingEnv) -> list[float]:
    return [w.balance.as_float() for w in env.portfolio.wallets]


def test_env_instances_share_no_state():
    a, b = make(split="val"), make(split="val")
    a.reset(seed=0)
    b.reset(seed=0)
    b.step(1)
    b_worth, b_balances = b.net_worth, _balances(b)
    class_ledger_size = len(Wallet.ledger.transactions)

    for action in (1, 0, 1, 1, 0, 1):
        a.step(action)
    a.reset(seed=0)
    a.step(0)
    assert (b.net_worth, _balances(b)) == (b_worth, b_balances)
    b.step(1)  # b goes on from where it was, unaffected by a's trades and resets
    assert b.position == 1 and b.bar == b.first_bar + 2

    wallets = a.portfolio.wallets + b.portfolio.wallets
    ledgers = {id(w.ledger) for w in wallets}
    assert len(ledgers) == len(wallets) and id(Wallet.ledger) not in ledgers
    assert all(w.ledger.transactions == [] for w in wallets)  # nothing kept, nothing grows
    assert len(Wallet.ledger.transactions) == class_ledger_size

    # Plain TensorTrade: one class-level ledger for every wallet of every env in the process.
    closes = split_closes(a)[:30]
    plain_a, cash_a, _ = plain_env(closes)
    plain_b, cash_b, _ = plain_env(closes)
    assert cash_a.ledger is cash_b.ledger is Wallet.ledger
    plain_a.reset()
    plain_b.reset()
    plain_a.step(1)
    plain_a.step(0)
    a_records = len(cash_a.ledger.transactions)
    assert a_records > 0 and len(cash_b.ledger.transactions) == a_records
    plain_b.reset()  # resetting env B wipes env A's records
    assert cash_a.ledger.transactions == []


def test_step_speed_does_not_degrade_over_a_long_always_trading_episode():
    # A low commission, so 9,000 round trips do not grind the portfolio down to nothing.
    env = TradingEnv({"data": LONG_SYN, "max_allowed_loss": None, "commission": 0.0001})
    env.reset(seed=0)
    stamps = [time.perf_counter()]
    truncated = False
    step = 0
    while not truncated:
        _, _, _, truncated, info = env.step((step + 1) % 2)  # buy, sell, buy, ...
        stamps.append(time.perf_counter())
        step += 1
    assert step >= 8000 and info["trades"] == step
    # Median step times, so one scheduler or GC pause on a busy machine does not decide it.
    # Bookkeeping that grows with each order (TensorTrade's broker rescanning every executed
    # order) makes the last 500 steps of this episode about 3x slower than the first 500.
    durations = np.diff(stamps)
    first = 1 / np.median(durations[:500])
    last = 1 / np.median(durations[-500:])
    assert last / first > 0.5, f"first 500 steps {first:.0f}/s, last 500 {last:.0f}/s"


# -- observations ----------------------------------------------------------------------------

def test_first_observation_is_not_zero_padded_and_windows_end_at_the_current_bar():
    env = make(split="train", window_size=10)
    obs, _ = env.reset(seed=0)
    window = obs[:-1].reshape(10, -1)
    assert not np.all(window == 0, axis=1).any()
    np.testing.assert_array_equal(window, window_at(env, env.first_bar))

    actions = np.random.default_rng(1).integers(0, 2, size=200)
    for action in actions:
        obs, _, _, _, info = env.step(action)
        t = info["bar"]
        np.testing.assert_array_equal(obs[:-1], window_at(env, t).ravel())
        assert obs[-1] == info["position"]
    # The batched observations used by evaluation are the same windows.
    np.testing.assert_array_equal(env.observations(int(obs[-1]))[t - env.first_bar], obs)

    # A split that starts later fills its first window with the bars before it (past data).
    val = make(split="val", window_size=10)
    obs, _ = val.reset(seed=0)
    assert val.bar == val.market.splits["val"][0]
    np.testing.assert_array_equal(obs[:-1], window_at(val, val.bar).ravel())

    # Plain TensorTrade without min_periods pads the first window with zero rows.
    plain, _, _ = plain_env(split_closes(env)[:40], window_size=10)
    plain_obs = plain.reset()[0]
    assert np.all(plain_obs[:9] == 0) and plain_obs[9, 0] == 0.0  # bar 0 shown as its number


# -- logging ---------------------------------------------------------------------------------

def test_trading_writes_no_log_records(caplog):
    caplog.set_level(logging.INFO)
    env = make(split="val")
    env.reset(seed=0)
    for step in range(40):
        info = env.step((step + 1) % 2)[4]
    assert info["trades"] == 40
    assert [r for r in caplog.records if "tensortrade" in r.pathname] == []

    plain, _, _ = plain_env(split_closes(env)[:50])
    plain.reset()
    for step in range(10):
        plain.step((step + 1) % 2)
    order_lines = [r for r in caplog.records if "tensortrade" in r.pathname]
    assert len(order_lines) == 10 and order_lines[0].levelno == logging.INFO
    assert order_lines[0].getMessage().startswith("Step ")


# -- trading semantics by hand ---------------------------------------------------------------

def test_buy_hold_hold_sell_hold_matches_the_hand_computed_net_worth():
    c = 0.005
    env = make(split="val", commission=c)
    env.reset(seed=0)
    p = split_closes(env)
    worths = [env.step(a)[4]["net_worth"] for a in (1, 1, 1, 0, 0)]

    # Textbook: buy at bar 0's close, value at later closes, sell at bar 3's close.
    cash = 10_000.0
    btc = cash * (1 - c) / p[0]
    sold = btc * p[3] * (1 - c)
    expected = [btc * p[1], btc * p[2], btc * p[3], sold, sold]
    np.testing.assert_allclose(worths, expected, rtol=0, atol=0.02)

    # What TensorTrade really does: trades at the price rounded to cents, commission and cash
    # rounded to cents, BTC to 8 decimals (half-even); net worth is valued at the raw price.
    def q(value, places):
        return Decimal(value).quantize(Decimal(10) ** -places)

    price0, price3 = q(p[0], 2), q(p[3], 2)
    cash_d = q(cash, 2)
    btc_d = q((cash_d - q(Decimal(c) * cash_d, 2)) / price0, 8)
    sold_d = q((btc_d - q(Decimal(c) * btc_d, 8)) * price3, 2)
    assert _balances(env) == [float(sold_d), 0.0]
    exact = [float(btc_d) * p[1], float(btc_d) * p[2], float(btc_d) * p[3],
             float(sold_d), float(sold_d)]
    np.testing.assert_allclose(worths, exact, rtol=1e-12)


# -- settings --------------------------------------------------------------------------------

@pytest.mark.parametrize(("change", "message"), [
    ({"windw_size": 5}, r"unknown env setting\(s\) \['windw_size'\]"),
    ({"reward": "sharpe"}, r"unknown reward 'sharpe'.*log_return"),
    ({"window_size": 0}, r"window_size must be >= 1, got 0"),
    ({"commission": 1.5}, r"commission must be in \[0, 1\), got 1.5"),
    ({"initial_cash": 0}, r"initial_cash must be > 0"),
    ({"split": "foo"}, r"unknown split 'foo'; choose one of \['test', 'train', 'val'\]"),
    ({"actions": "long_shrot"}, r"unknown env.actions 'long_shrot'; did you mean 'long_short'"),
    ({"actions": {"sizes": [-1, 1]}}, r"must include 0"),
    ({"actions": "long_short", "reward": "pbr"}, r"reward 'pbr' .* only knows long-or-cash"),
    ({"borrow_rate": -0.1}, r"env.borrow_rate is an annual fraction in \[0, 10\)"),
    ({"borrow_rate": "5%"}, r"env.borrow_rate is an annual fraction"),
    ({"slippage": 5}, r"env.slippage must be a mapping"),
    ({"slippage": {"bp": 5}}, r"unknown env.slippage key 'bp'; did you mean 'bps'"),
    ({"slippage": {"bps": -1}}, r"env.slippage.bps must be a number in \[0, 10000\)"),
    ({"slippage": {"vol_window": 1}}, r"env.slippage.vol_window must be a whole number >= 2"),
])
def test_bad_settings_raise_value_error_naming_the_setting(change, message):
    with pytest.raises(ValueError, match=message):
        TradingEnv({"data": SYN, **change})


@pytest.mark.parametrize(("actions", "levels"), [
    ("long_only", (0.0, 1.0)), ("long_short", (-1.0, 0.0, 1.0)),
    ({"sizes": [0.5, -0.5, 0, 1]}, (-0.5, 0.0, 0.5, 1.0))])
def test_each_action_is_an_exposure_level_and_the_observation_ends_with_the_level_held(
        actions, levels):
    env = make(actions=actions)
    assert env.levels == levels and env.action_space.n == len(levels)
    assert env.uses_tensortrade == (actions == "long_only")
    obs, info = env.reset(seed=0)
    assert env.position == 0.0 and obs[-1] == 0.0 and info["position"] == 0.0
    for action, level in enumerate(levels):
        obs, _, _, _, info = env.step(action)
        assert env.position == level and info["position"] == level
        assert obs[-1] == np.float32(level)
        np.testing.assert_array_equal(env.observations(level)[env.bar - env.first_bar], obs)
    assert info["trades"] == len(levels) - (levels[0] == 0)  # every change of level trades


def test_slippage_moves_long_only_off_tensortrade_and_costs_are_reported_apart():
    plain, slipped = make(), make(slippage={"bps": 10})
    assert plain.uses_tensortrade and not slipped.uses_tensortrade
    for env in (plain, slipped):
        env.reset(seed=0)
        env.step(1)
    assert plain.paid["slippage"] == 0.0 and plain.paid["commission"] > 0
    assert slipped.paid["slippage"] == pytest.approx(slipped.paid["commission"], rel=1e-3)
    assert slipped.net_worth < plain.net_worth


def test_make_env_builds_a_default_env():
    env = make_env({"data": SYN})
    assert isinstance(env, TradingEnv)
    assert {k: env.settings[k] for k in ENV_DEFAULTS} == ENV_DEFAULTS
    assert env.action_space.n == 2
