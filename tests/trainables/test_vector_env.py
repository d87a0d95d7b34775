"""The vectorised env against the TensorTrade-backed reference, step by step.

Both are driven the way RLlib drives them: the reference as N ``TradingEnv`` in gymnasium's
``SyncVectorEnv`` (RLlib's default vectorisation: next-step autoreset, sub-env ``i`` seeded
``seed + i``), the vectorised env on its own, with the same seeds and the same random actions.
Every step must give identical observations, rewards, terminations, truncations and infos (net
worth included): the vectorised env reproduces TensorTrade's decimal bookkeeping exactly, so the
tolerance is zero.
"""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from trainables.env import TradingEnv
from trainables.vector_env import VectorTradingEnv

REPO = Path(__file__).resolve().parents[2]
# The real market: one constant, so moving the file means changing one line (a checkout that
# keeps it elsewhere points TRADETUNE_COINBASE_CSV at it).
REAL_CSV = REPO / "examples" / "data" / "Coinbase_BTCUSD_1h.csv.gz"
SYN = {"synthetic": {"n_bars": 1500, "seed": 7}}


def real_data() -> dict:
    assert REAL_CSV.is_file(), f"{REAL_CSV} ships with the repository"
    return {"path": str(REAL_CSV)}


def random_actions(rng: np.random.Generator, n_envs: int, steps: int,
                   runs: float, n_actions: int = 2) -> np.ndarray:
    """Random actions, a share ``runs`` of them starting a run of 1 to 40 equal actions, so
    episodes both trade often and hold long enough for prices to move the portfolio."""
    actions = np.empty((steps, n_envs), dtype=np.int64)
    for env in range(n_envs):
        t = 0
        while t < steps:
            run = int(rng.integers(1, 41)) if rng.random() < runs else 1
            actions[t:t + run, env] = rng.integers(0, n_actions)
            t += run
    return actions


def drive(config: dict, n_envs: int, steps: int, seed: int, runs: float = 0.3) -> dict:
    """Step both envs in lockstep; assert equality at every step; return what happened."""
    reference = gym.vector.SyncVectorEnv([lambda: TradingEnv(config)] * n_envs)
    vector = VectorTradingEnv(config, num_envs=n_envs)
    assert vector.single_observation_space == reference.single_observation_space
    assert vector.single_action_space == reference.single_action_space
    assert vector.metadata["autoreset_mode"] == reference.metadata["autoreset_mode"]

    def same(got, want, step):
        names = ("obs", "reward", "terminated", "truncated")[:len(want) - 1]
        for name, a, b in zip(names, got[:-1], want[:-1]):
            np.testing.assert_array_equal(a, b, err_msg=f"{name} differs at step {step}")
            assert a.dtype == b.dtype, name
        infos, want_infos = got[-1], want[-1]
        assert sorted(infos) == sorted(want_infos)
        for key in want_infos:
            np.testing.assert_array_equal(infos[key], want_infos[key],
                                          err_msg=f"info {key} differs at step {step}")

    same(vector.reset(seed=seed), reference.reset(seed=seed), "reset")
    actions = random_actions(np.random.default_rng(seed), n_envs, steps, runs,
                             int(reference.single_action_space.n))
    seen = {"ends": 0, "terminated": 0, "truncated": 0, "trades": 0, "locked": False,
            "capped": False, "max_worth": 0.0, "levels": set()}
    for step, action in enumerate(actions):
        if step == steps // 2:  # a reseed in the middle, as a new sample() with a seed does
            same(vector.reset(seed=[seed + 100 + i for i in range(n_envs)]),
                 reference.reset(seed=[seed + 100 + i for i in range(n_envs)]), "reseed")
        got, want = vector.step(action), reference.step(action)
        same(got, want, step)
        seen["terminated"] += int(want[2].sum())
        seen["truncated"] += int(want[3].sum())
        seen["max_worth"] = max(seen["max_worth"], float(want[4]["net_worth"].max()))
        seen["trades"] = max(seen["trades"], int(want[4]["trades"].max()))
        seen["levels"] |= set(want[4]["position"].tolist())
        # Internal state, read only to prove the rare paths below were really exercised.
        seen["locked"] |= bool((vector._cash_locked + vector._btc_locked).any())
        seen["capped"] |= bool(((vector._position == 1) & (vector._cash > 0)).any()
                               | ((vector._position == 0) & (vector._btc > 0)).any())
    seen["ends"] = seen["terminated"] + seen["truncated"]
    return seen


def test_real_data_default_settings_as_a_trial_trains():
    config = {"data": real_data(), "split": "train", "random_start": True, "window_size": 17}
    # An untrained policy: a fresh random action every bar.
    seen = drive(config, n_envs=4, steps=1000, seed=3, runs=0.0)
    assert seen["terminated"] >= 3  # the 32% loss limit ends random-trading episodes
    assert seen["trades"] > 50


def test_real_data_pbr_reward_episode_cap_and_validation_split():
    config = {"data": real_data(), "split": "val", "random_start": True, "reward": "pbr",
              "max_episode_steps": 60, "window_size": 9, "commission": 0.0025}
    seen = drive(config, n_envs=3, steps=400, seed=11)
    assert seen["truncated"] >= 10


def test_synthetic_data_end_of_data_truncation_without_random_start():
    # 1500 bars: the validation split is 225 bars, so episodes run into the end of the data.
    config = {"data": SYN, "split": "val", "window_size": 5, "max_allowed_loss": None,
              "commission": 0.0}
    seen = drive(config, n_envs=3, steps=700, seed=5)
    assert seen["truncated"] >= 6 and seen["terminated"] == 0


def test_synthetic_data_orders_above_the_exchanges_size_limit():
    # Net worth above 1,000,000 USD: an order moves at most that much; the rest stays put.
    config = {"data": SYN, "split": "train", "window_size": 5, "random_start": True,
              "initial_cash": 2_500_000.0, "max_allowed_loss": None}
    seen = drive(config, n_envs=3, steps=400, seed=7)
    assert seen["capped"] and seen["max_worth"] > 1_000_000


def test_synthetic_data_commission_ties_leave_funds_locked_in_unfinished_orders():
    # At 50% commission the fee often lands on a half-cent (half-satoshi) tie; TensorTrade's
    # two roundings then lose a unit, the order never completes and its funds stay locked
    # (counted in net worth, never traded again). A 90% loss limit or 40 steps end episodes.
    config = {"data": SYN, "split": "train", "window_size": 5, "random_start": True,
              "commission": 0.5, "max_allowed_loss": 0.9, "max_episode_steps": 40}
    seen = drive(config, n_envs=4, steps=500, seed=13)
    assert seen["locked"] and seen["terminated"] >= 4 and seen["truncated"] >= 10


def test_synthetic_data_a_portfolio_ground_to_nothing_terminates():
    # Without a loss limit, 30% a trade on every bar ends in cents rounded to 0 (worth 0).
    config = {"data": SYN, "split": "train", "window_size": 5, "random_start": True,
              "commission": 0.3, "max_allowed_loss": None}
    seen = drive(config, n_envs=3, steps=400, seed=17, runs=0.0)
    assert seen["terminated"] >= 3


# -- action sets and frictions TensorTrade does not model (trainables/accounting.py) ---------

def test_real_data_long_short_with_slippage_and_borrow():
    config = {"data": real_data(), "split": "train", "random_start": True, "window_size": 17,
              "actions": "long_short", "borrow_rate": 0.2,
              "slippage": {"bps": 3, "vol_mult": 0.2, "vol_window": 24}}
    seen = drive(config, n_envs=4, steps=1000, seed=3)
    assert seen["levels"] == {-1.0, 0.0, 1.0}
    assert seen["terminated"] >= 1 and seen["trades"] > 30


def test_real_data_sizes_on_the_validation_split_with_an_episode_cap():
    config = {"data": real_data(), "split": "val", "random_start": True, "window_size": 9,
              "actions": {"sizes": [-1, -0.5, 0, 0.25, 1]}, "max_episode_steps": 60,
              "commission": 0.0025, "slippage": {"bps": 10}}
    seen = drive(config, n_envs=3, steps=400, seed=11)
    assert seen["levels"] == {-1.0, -0.5, 0.0, 0.25, 1.0} and seen["truncated"] >= 10


def test_synthetic_data_long_only_with_slippage_runs_on_the_book():
    config = {"data": SYN, "split": "val", "window_size": 5, "max_allowed_loss": None,
              "slippage": {"vol_mult": 0.5, "vol_window": 10}}
    assert not TradingEnv(config).uses_tensortrade
    seen = drive(config, n_envs=3, steps=700, seed=5)
    assert seen["truncated"] >= 6 and seen["terminated"] == 0


def test_synthetic_data_shorts_with_steep_costs_hit_the_loss_limit():
    config = {"data": SYN, "split": "train", "window_size": 5, "random_start": True,
              "actions": {"sizes": [-1, -0.5, 0, 0.5]}, "commission": 0.05,
              "borrow_rate": 5.0, "max_allowed_loss": 0.3, "max_episode_steps": 20}
    seen = drive(config, n_envs=4, steps=500, seed=13, runs=0.0)
    assert seen["terminated"] >= 4 and seen["truncated"] >= 1


def test_num_envs_comes_in_the_config_and_settings_are_checked_like_the_reference():
    env = VectorTradingEnv({"data": SYN, "split": "val", "num_envs": 3})  # as RLlib passes it
    obs, infos = env.reset(seed=0)
    assert obs.shape == (3, env.single_observation_space.shape[0]) and env.num_envs == 3
    assert env.action_space == gym.spaces.MultiDiscrete([2, 2, 2])
    assert list(infos["bar"]) == [env.first_bar] * 3
    for bad, message in (({"windw_size": 5}, r"unknown env setting\(s\) \['windw_size'\]"),
                         ({"split": "foo"}, r"unknown split 'foo'"),
                         ({"commission": 1.5}, r"commission must be in \[0, 1\)"),
                         ({"actions": "short_only"}, r"unknown env.actions 'short_only'"),
                         ({"slippage": {"bps": -2}}, r"env.slippage.bps must be")):
        with pytest.raises(ValueError, match=message):
            TradingEnv({"data": SYN, **bad})
        with pytest.raises(ValueError, match=message):
            VectorTradingEnv({"data": SYN, **bad})
    with pytest.raises(ValueError, match="actions must be 0 .* or 1"):
        env.step(np.array([0, 2, 1]))


def test_vector_env_module_does_not_import_tensortrade():
    code = ("import sys; import trainables.vector_env as v; "
            "env = v.VectorTradingEnv({'data': {'path': sys.argv[1]}}, num_envs=2); "
            "env.reset(seed=0); env.step([1, 0]); "
            "print(sorted(m for m in sys.modules if m.startswith('tensortrade')))")
    out = subprocess.run([sys.executable, "-c", code, str(real_data()["path"])], cwd=REPO,
                         capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


# -- in RLlib --------------------------------------------------------------------------------

@pytest.mark.slow
def test_rllib_samples_the_same_episodes_from_the_vector_env_and_the_reference(ray_session,
                                                                              tiny_sweep):
    from test_trainable import fixed_params, settings_of

    from trainables.rllib_trainable import algorithm_config

    episodes = {}
    for vector_env in (True, False):
        sweep = tiny_sweep(**{"training.envs_per_runner": 4,
                              "training.vector_env": vector_env})
        algo = algorithm_config("ppo", settings_of(sweep, fixed_params(sweep)), sweep,
                                seed=5).build_algo()
        try:
            env = algo.env_runner.env.unwrapped
            assert isinstance(env, VectorTradingEnv) == vector_env
            assert env.num_envs == 4
            episodes[vector_env] = algo.env_runner.sample(num_timesteps=800, explore=True)
        finally:
            algo.stop()
    vector, reference = episodes[True], episodes[False]
    assert len(vector) == len(reference) > 4  # some episodes ended and were autoreset
    assert any(e.is_done for e in reference)
    for got, want in zip(vector, reference):
        np.testing.assert_array_equal(got.get_observations(), want.get_observations())
        np.testing.assert_array_equal(got.get_actions(), want.get_actions())
        np.testing.assert_array_equal(got.get_rewards(), want.get_rewards())
        assert (got.is_terminated, got.is_truncated) == (want.is_terminated, want.is_truncated)
        assert got.get_infos(-1)["net_worth"] == want.get_infos(-1)["net_worth"]


@pytest.mark.slow
def test_a_tiny_trial_trains_on_the_vector_env_by_default_with_the_references_scores(
        ray_session, results_dir, tiny_sweep):
    from test_trainable import fixed_params, rows, run_one

    from trainables import metrics as M

    scores = {}
    for vector_env in (True, False):
        sweep = tiny_sweep(**{"training.max_iterations": 2, "training.envs_per_runner": 3,
                              "training.vector_env": vector_env})
        grid, result = run_one(sweep, fixed_params(sweep), results_dir, f"vector-{vector_env}")
        assert result.error is None
        scores[vector_env] = [(r[M.VAL_SCORE], r[M.ENV_STEPS], r[M.EPISODE_RETURN])
                              for r in rows(result)]
    assert tiny_sweep()["training"]["vector_env"] is True
    assert len(scores[True]) == 2 and all(math.isfinite(s[0]) for s in scores[True])
    assert scores[True] == scores[False]
