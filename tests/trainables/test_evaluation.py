"""Tests for trainables.evaluation: baselines, metrics by hand, whole-split runs, RLlib policies."""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from trainables.env import TradingEnv
from trainables.evaluation import (Evaluation, always_long, as_policy, evaluate, level_index,
                                   never_trade)

SYN = {"synthetic": {"n_bars": 1500, "seed": 7}}
CONFIG = {"data": SYN, "window_size": 5}
# One action set of each kind: today's, the named long-short one and a list of sizes.
ACTION_SETS = {"long_only": "long_only", "long_short": "long_short",
               "sizes": {"sizes": [-1, -0.5, 0, 0.5, 1]}}


def split_closes(env_config: dict, split: str) -> np.ndarray:
    env = TradingEnv({**env_config, "split": split})
    return env.market.bars["close"].to_numpy()[env.first_bar:env.end_bar]


def momentum(obs: np.ndarray) -> np.ndarray:
    """Long after an up bar: the newest bar's log return is the first feature of the last row."""
    n_features = (obs.shape[1] - 1) // CONFIG["window_size"]
    return (obs[:, (CONFIG["window_size"] - 1) * n_features] > 0).astype(np.int64)


def sticky_momentum(obs: np.ndarray) -> np.ndarray:
    """A policy that depends on its own position: enter above +0.2%, leave below -0.2%."""
    n_features = (obs.shape[1] - 1) // CONFIG["window_size"]
    last_return = obs[:, (CONFIG["window_size"] - 1) * n_features]
    return np.where(obs[:, -1] == 1, last_return > -0.002, last_return > 0.002).astype(np.int64)


def churn(obs: np.ndarray) -> np.ndarray:
    """Trade every bar: always switch to the other position."""
    return (1 - obs[:, -1]).astype(np.int64)


def stepping_momentum(levels: tuple[float, ...]):
    """A policy over ``levels`` that depends on its own position: one level up after a rise of
    more than 0.2%, one level down after a fall of more than 0.2%, else stay."""
    def act(obs: np.ndarray) -> np.ndarray:
        n_features = (obs.shape[1] - 1) // CONFIG["window_size"]
        last_return = obs[:, (CONFIG["window_size"] - 1) * n_features]
        held = np.array([level_index(levels, p) for p in obs[:, -1]])
        step = np.where(last_return > 0.002, 1, np.where(last_return < -0.002, -1, 0))
        return np.clip(held + step, 0, len(levels) - 1).astype(np.int64)
    return act


def sequential_rollout(act, env_config: dict, split: str) -> tuple[list[int], list[float]]:
    """One policy call per observation, the slow obvious way."""
    env = TradingEnv({**env_config, "split": split, "max_allowed_loss": None})
    obs, info = env.reset(seed=0)
    actions, equity = [], [info["net_worth"]]
    done = False
    while not done:
        action = int(np.asarray(act(obs[None, :])).reshape(-1)[0])
        obs, _, terminated, truncated, info = env.step(action)
        actions.append(action)
        equity.append(info["net_worth"])
        done = terminated or truncated
    return actions, equity


# -- baselines -------------------------------------------------------------------------------

def test_never_trade_scores_zero():
    result = evaluate(never_trade, CONFIG, "val")
    assert (result.pnl, result.pnl_pct, result.trades, result.time_in_market) == (0.0, 0.0, 0, 0.0)
    assert result.final_net_worth == 10_000.0
    assert (result.sharpe, result.max_drawdown) == (0.0, 0.0)
    assert set(result.equity) == {10_000.0} and not result.positions.any()


def test_always_long_tracks_buy_and_hold_minus_one_commission():
    commission = 0.002
    config = {**CONFIG, "commission": commission}
    closes = split_closes(config, "val")
    result = evaluate(always_long, config, "val")

    assert result.buy_and_hold_pct == pytest.approx((closes[-1] / closes[0] - 1) * 100, abs=1e-12)
    expected = ((1 - commission) * closes[-1] / closes[0] - 1) * 100
    # Within TensorTrade's rounding of the fill price to cents and of BTC to 8 decimals.
    assert result.pnl_pct == pytest.approx(expected, abs=2e-4)
    assert result.pnl == pytest.approx(expected * 100, abs=0.02)  # on 10,000 of cash
    np.testing.assert_allclose(result.equity[1:],
                               10_000 * (1 - commission) * closes[1:] / closes[0], rtol=1e-6)
    assert result.trades == 1 and result.time_in_market == 1.0
    assert list(result.positions) == [0] + [1] * (len(closes) - 1)


@pytest.mark.parametrize("name", ["long_short", "sizes"])
def test_baselines_hold_cash_and_the_largest_level_under_every_action_set(name):
    config = {**CONFIG, "actions": ACTION_SETS[name]}
    levels = TradingEnv({**config, "split": "val"}).levels
    cash = evaluate(never_trade, config, "val")
    assert set(cash.actions) == {levels.index(0.0)} and not cash.positions.any()
    assert (cash.pnl, cash.trades, cash.time_in_market, cash.time_short) == (0.0, 0, 0.0, 0.0)
    assert cash.commission_paid == cash.borrow_paid == 0.0

    long = evaluate(always_long, config, "val")
    assert set(long.actions) == {len(levels) - 1} and levels[-1] == 1.0
    assert list(long.positions) == [0] + [1] * (long.bars - 1)
    assert (long.trades, long.time_in_market, long.time_long, long.time_short) == (1, 1.0, 1.0, 0.0)
    # The same trade as long-only, kept in float64 instead of TensorTrade's cents and satoshis.
    plain = evaluate(always_long, CONFIG, "val")
    np.testing.assert_allclose(long.equity, plain.equity, rtol=1e-6)
    assert long.commission_paid == pytest.approx(0.001 * 10_000)


def test_always_long_holds_the_largest_level_where_the_action_set_has_no_full_long():
    result = evaluate(always_long, {**CONFIG, "actions": {"sizes": [-0.5, 0, 0.5]}}, "val")
    assert list(result.positions) == [0] + [0.5] * (result.bars - 1)
    assert result.time_in_market == 0.5 and result.time_long == 1.0


def test_level_index_maps_an_exposure_to_its_action_and_refuses_others():
    levels = (-1.0, -0.5, 0.0, 0.5, 1.0)
    assert [level_index(levels, x) for x in (-1, -0.5, 0, np.float32(0.5), 1.0)] == [0, 1, 2, 3, 4]
    assert level_index((0.0, 0.1, 0.3), 0.1 + 0.2) == 2  # 0.30000000000000004
    with pytest.raises(ValueError, match="exposure 0.25 is none of the action levels"):
        level_index(levels, 0.25)


# -- coverage --------------------------------------------------------------------------------

@pytest.mark.parametrize("split", ["val", "test"])
def test_evaluation_covers_the_whole_split(split):
    env = TradingEnv({**CONFIG, "split": split})
    start, end = env.market.splits[split]
    result = evaluate(momentum, CONFIG, split)
    assert result.split == split
    assert result.bars == end - start == len(result.equity) == len(result.positions)
    assert result.dates[0] == str(env.market.bars.index[start])
    assert result.dates[-1] == str(env.market.bars.index[end - 1])
    assert len(result.dates) == result.bars


def test_evaluation_ignores_the_training_loss_limit_and_random_start():
    config = {**CONFIG, "commission": 0.01, "max_allowed_loss": 0.3, "random_start": True,
              "max_episode_steps": 20}
    start, end = TradingEnv({**config, "split": "val"}).market.splits["val"]

    # Under the training settings this policy is stopped by the loss limit well before the end.
    env = TradingEnv({**config, "split": "val", "random_start": False, "max_episode_steps": None})
    obs, _ = env.reset(seed=0)
    terminated = truncated = False
    while not (terminated or truncated):
        obs, _, terminated, truncated, _ = env.step(int(churn(obs[None])[0]))
    assert terminated and env.bar < end - 50

    result = evaluate(churn, config, "val")
    assert result.bars == end - start
    assert result.dates[0] == str(env.market.bars.index[start])
    assert result.trades == end - start - 1
    assert result.final_net_worth < 0.7 * 10_000  # well past the loss limit, still running


def test_a_policy_that_loses_everything_gets_finite_metrics():
    config = {"data": {"synthetic": {"n_bars": 4000, "seed": 5},
                       "splits": {"train": 0.5, "val": 0.4, "test": 0.1}},
              "window_size": 5, "commission": 0.02}
    result = evaluate(churn, config, "val")
    # Nothing left to trade with: the run ends at the bar where the portfolio reached 0.
    assert result.final_net_worth == 0.0 and result.pnl_pct == -100.0
    assert result.max_drawdown == 1.0
    assert result.bars < split_closes(config, "val").size
    assert all(math.isfinite(v) for v in result.metrics().values())


# -- metrics by hand -------------------------------------------------------------------------

@pytest.mark.parametrize(("freq", "periods_per_year"), [("1h", 365.25 * 24), ("4h", 365.25 * 6)])
def test_sharpe_is_annualised_with_the_bar_interval(freq, periods_per_year):
    config = {"data": {"synthetic": {**SYN["synthetic"], "freq": freq}}, "window_size": 5}
    result = evaluate(momentum, config, "val")
    assert 0 < result.time_in_market < 1 and result.trades > 10

    returns = [result.equity[i + 1] / result.equity[i] - 1 for i in range(result.bars - 1)]
    mean = sum(returns) / len(returns)
    std = math.sqrt(sum((r - mean) ** 2 for r in returns) / len(returns))
    assert result.sharpe == pytest.approx(mean / std * math.sqrt(periods_per_year), rel=1e-9)


def test_max_drawdown_is_the_worst_fall_from_a_running_peak():
    result = evaluate(always_long, CONFIG, "test")
    peak, worst, last = result.equity[0], 0.0, 0.0
    for value in result.equity:
        peak = max(peak, value)
        last = (peak - value) / peak
        worst = max(worst, last)
    assert worst > last + 0.005  # the worst fall is mid-period, not the final one
    assert result.max_drawdown == pytest.approx(worst, rel=1e-12)


def test_metrics_are_the_scalars():
    result = evaluate(momentum, CONFIG, "val")
    metrics = result.metrics()
    assert set(metrics) == {"bars", "final_net_worth", "pnl", "pnl_pct", "sharpe",
                            "sharpe_per_bar", "return_skew", "return_kurtosis",
                            "max_drawdown", "trades", "time_in_market", "buy_and_hold_pct",
                            # against holding the asset (the verdict's figures)
                            "active_sharpe_per_bar", "active_skew", "active_kurtosis",
                            "buy_and_hold_sharpe_per_bar"}
    assert isinstance(result, Evaluation) and metrics["pnl"] == result.pnl


FRICTIONS = {"time_long", "time_short", "commission_paid", "slippage_paid", "borrow_paid"}


@pytest.mark.parametrize(("name", "slippage"), [("long_only", {"bps": 5}),
                                                ("long_short", {}), ("sizes", {"bps": 5})])
def test_time_long_and_short_and_the_fees_paid_beyond_long_or_cash(name, slippage):
    levels = TradingEnv({**CONFIG, "actions": ACTION_SETS[name]}).levels
    config = {**CONFIG, "actions": ACTION_SETS[name], "slippage": slippage, "borrow_rate": 0.5}
    result = evaluate(stepping_momentum(levels), config, "val")
    assert set(result.metrics()) - set(evaluate(momentum, CONFIG, "val").metrics()) == FRICTIONS
    held = result.positions[1:]
    assert result.time_long == pytest.approx(np.mean(held > 0))
    assert result.time_short == pytest.approx(np.mean(held < 0))
    assert result.time_in_market == pytest.approx(np.mean(np.abs(held)))
    assert 0 < result.time_long < 1 and result.trades > 10
    assert result.commission_paid > 0
    assert (result.slippage_paid > 0) == bool(slippage)
    if min(levels) < 0:
        assert 0 < result.time_short < 1 and result.borrow_paid > 0
    else:
        assert result.time_short == 0.0 and result.borrow_paid == 0.0


def test_return_moments_by_hand():
    result = evaluate(momentum, CONFIG, "val")
    returns = np.diff(result.equity) / result.equity[:-1]
    z = (returns - returns.mean()) / returns.std()
    assert result.sharpe_per_bar == pytest.approx(returns.mean() / returns.std(), rel=1e-9)
    assert result.return_skew == pytest.approx(float(np.mean(z ** 3)), rel=1e-9)
    assert result.return_kurtosis == pytest.approx(float(np.mean(z ** 4)), rel=1e-9)
    assert result.sharpe == pytest.approx(
        result.sharpe_per_bar * np.sqrt(365.25 * 24), rel=1e-9)


# -- policies --------------------------------------------------------------------------------

def test_batched_evaluation_equals_a_sequential_greedy_rollout():
    result = evaluate(sticky_momentum, CONFIG, "val")
    actions, equity = sequential_rollout(sticky_momentum, CONFIG, "val")
    assert 0 < sum(actions) < len(actions)
    assert list(result.positions[1:]) == actions
    assert list(result.equity) == equity
    assert result.trades == sum(a != b for a, b in zip([0, *actions], actions, strict=False))


@pytest.mark.parametrize("name", ["long_short", "sizes"])
def test_batched_evaluation_equals_a_sequential_greedy_rollout_for_every_level(name):
    config = {**CONFIG, "actions": ACTION_SETS[name], "slippage": {"bps": 3}}
    levels = TradingEnv({**config, "split": "val"}).levels
    policy = stepping_momentum(levels)
    result = evaluate(policy, config, "val")
    actions, equity = sequential_rollout(policy, config, "val")
    assert set(actions) == set(range(len(levels)))  # every level is held at some point
    assert list(result.actions[:-1]) == actions
    assert list(result.positions[1:]) == [levels[a] for a in actions]
    assert list(result.equity) == equity
    exposures = [0.0, *(levels[a] for a in actions)]
    assert result.trades == sum(a != b for a, b in zip(exposures, exposures[1:]))


@pytest.mark.parametrize("agent", [object(), "ppo", 42])
def test_as_policy_rejects_what_it_cannot_run(agent):
    with pytest.raises(TypeError, match=rf"cannot evaluate {type(agent).__name__}: expected a "
                                        "function of an observation batch"):
        as_policy(agent)


def test_as_policy_passes_functions_through():
    assert as_policy(momentum) is momentum


TINY_SETTINGS = {
    "training": {"lr": 1e-4, "train_batch_size_per_learner": 200, "minibatch_size": 100,
                 "num_epochs": 1},
    "model": {"fcnet_hiddens": [16], "fcnet_activation": "tanh"},
    "env": {"window_size": 5, "max_allowed_loss": 0.3},
}
TINY_SWEEP = {"algorithm": "ppo", "data": SYN, "env": {}, "training": {"envs_per_runner": 1}}


@pytest.mark.slow
def test_tiny_ppo_trains_next_to_tensortrade_and_evaluates_like_a_sequential_rollout(ray_session):
    import torch

    import tensortrade  # noqa: F401  (already imported through trainables.env)
    from trainables.rllib_trainable import algorithm_config, env_config

    algo = algorithm_config("ppo", TINY_SETTINGS, TINY_SWEEP, seed=0).build_algo()
    try:
        for _ in range(2):
            result = algo.train()
        assert result["training_iteration"] == 2
        assert result["env_runners"]["num_env_steps_sampled_lifetime"] >= 400
        assert "tensortrade" in sys.modules and "tensorflow" not in sys.modules

        val_config = env_config(TINY_SWEEP, TINY_SETTINGS, "val")
        evaluation = evaluate(algo, val_config, "val")
        module = algo.get_module()

        def one_by_one(obs: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                out = module.forward_inference({"obs": torch.as_tensor(obs)})
            return out["action_dist_inputs"].argmax(dim=-1).numpy()

        actions, equity = sequential_rollout(one_by_one, val_config, "val")
        assert 0 < sum(actions) < len(actions)  # both actions occur: the comparison means something
        assert list(evaluation.positions[1:]) == actions
        assert list(evaluation.equity) == equity
        assert evaluate(module, val_config, "val").metrics() == evaluation.metrics()
    finally:
        algo.stop()


# -- action sets -----------------------------------------------------------------------------

def long_or_short_momentum(obs: np.ndarray) -> np.ndarray:
    """long_short: long (action 2) after an up bar, short (action 0) after a down bar."""
    return 2 * momentum(obs)


def test_a_long_short_run_reports_time_short_and_each_cost_apart():
    config = {**CONFIG, "actions": "long_short", "borrow_rate": 0.1, "slippage": {"bps": 5}}
    result = evaluate(long_or_short_momentum, config, "val")
    actions, equity = sequential_rollout(long_or_short_momentum, config, "val")
    np.testing.assert_array_equal(result.equity, equity)
    assert set(np.unique(result.positions[1:])) == {-1.0, 1.0}
    assert result.time_in_market == 1.0 and 0.2 < result.time_short < 0.8
    assert result.time_short == pytest.approx(float(np.mean(result.positions[1:] < 0)))
    assert result.commission_paid > 0 and result.borrow_paid > 0
    # 5 bps of slippage against 10 bps of commission, on the same notional.
    assert result.slippage_paid == pytest.approx(result.commission_paid / 2, rel=1e-9)


def test_long_only_with_commission_only_reports_no_friction_metrics():
    """Today's setting keeps today's metrics; with slippage its costs are reported apart."""
    result = evaluate(churn, CONFIG, "val")
    assert None is result.time_short is result.commission_paid is result.borrow_paid
    slipped = evaluate(churn, {**CONFIG, "slippage": {"bps": 5}}, "val")
    assert slipped.borrow_paid == 0.0 and slipped.time_short == 0.0
    assert slipped.commission_paid > slipped.trades * 5 and slipped.slippage_paid > 0


def test_active_returns_are_the_strategy_minus_buy_and_hold_bar_by_bar():
    """The verdict judges against holding the asset: the active figures are those of the
    strategy's bar returns minus buy-and-hold's, and a buy-and-hold clone has almost none."""
    config = {**CONFIG, "commission": 0.0}
    closes = split_closes(config, "val")
    result = evaluate(momentum, config, "val")
    active = result.bar_returns() - np.diff(closes) / closes[:-1]
    assert result.active_sharpe_per_bar == pytest.approx(active.mean() / active.std(), rel=1e-9)
    held = np.diff(closes) / closes[:-1]
    assert result.buy_and_hold_sharpe_per_bar == pytest.approx(held.mean() / held.std(), rel=1e-9)
    clone = evaluate(always_long, config, "val")  # its active returns are all but zero
    clone_active = clone.bar_returns() - held
    assert np.abs(clone_active[1:]).max() < 1e-6 < np.abs(active).max()


def test_a_delay_executes_each_decision_one_bar_late():
    """The cost stress 'delay 1 bar': a policy that ignores its position decides as before, and
    each decision is executed at the next bar (the first bar keeps the position held)."""
    on_time = evaluate(momentum, CONFIG, "val")
    late = evaluate(momentum, CONFIG, "val", delay=1)
    assert list(late.actions[1:-1]) == list(on_time.actions[:-2])
    assert late.actions[0] == 0  # cash held before the first decision arrives
    assert late.pnl_pct != on_time.pnl_pct


def test_stress_reports_whether_the_edge_survives_each_harsher_cost():
    from search.results.stress import STRESSES, stress

    config = {**CONFIG, "commission": 0.001}
    result = stress(momentum, config, "val")
    assert list(result) == list(STRESSES)
    base = evaluate(momentum, config, "val")
    assert result["commission x2"]["pnl_pct"] < base.pnl_pct
    assert result["slippage +10 bps"]["pnl_pct"] < base.pnl_pct
    for row in result.values():
        assert row["survives"] == (row["pnl_pct"] > row["buy_and_hold_pct"]
                                   and row["active_sharpe_per_bar"] > 0)
