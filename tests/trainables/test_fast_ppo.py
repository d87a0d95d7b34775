"""The lean PPO of a trial (trainables/fast_ppo.py) against RLlib's stock PPO, in real RLlib.

Same seed, same tiny config: the first iteration must sample the very same episodes (same
observations, actions, log-probabilities) and compute the same losses; only the fused Adam
step may differ in the last float bits, so later figures are compared with a tolerance.
"""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow

STATS = ("policy_loss", "vf_loss", "vf_loss_unclipped", "vf_explained_var", "entropy",
         "mean_kl_loss", "total_loss")
# What the lean learner logs once per update instead of per minibatch: the same figures.
COUNTS = (("default_policy", "num_module_steps_trained"),
          ("default_policy", "module_train_batch_size_mean"),
          ("default_policy", "weights_seq_no"), ("default_policy", "curr_kl_coeff"),
          ("__all_modules__", "num_env_steps_trained"),
          ("__all_modules__", "num_module_steps_trained_lifetime"))


def run(sweep: dict, settings: dict, lean: bool, iterations: int) -> tuple[list, list, object]:
    """Learner stats and sampled episodes of ``iterations`` train() calls; the config too."""
    from trainables.rllib_trainable import algorithm_config

    config = algorithm_config("ppo", settings, sweep, seed=5, lean=lean)
    algo = config.build_algo()
    sampled: list = []
    runner = algo.env_runner_group.local_env_runner
    sample = runner.sample

    def keep(*args, **kwargs):
        episodes = sample(*args, **kwargs)
        sampled.append(episodes)
        return episodes

    runner.sample = keep
    try:
        stats = []
        for _ in range(iterations):
            result = algo.train()
            stats.append({k: float(result["learners"]["default_policy"][k]) for k in STATS})
            stats[-1].update({key: float(result["learners"][key[0]][key[1]])
                              for key in COUNTS})
        module = algo.learner_group._learner.module["default_policy"]
        learner = type(algo.learner_group._learner).__name__
        facts = (type(module).__name__, learner, [tuple(p.shape) for p in module.parameters()])
    finally:
        algo.stop()
    return stats, sampled, facts


def test_lean_ppo_samples_and_learns_as_rllibs_stock_ppo(ray_session, tiny_sweep):
    from test_trainable import fixed_params, settings_of

    sweep = tiny_sweep(**{"training.envs_per_runner": 4})
    settings = settings_of(sweep, fixed_params(sweep))
    lean_stats, lean_episodes, lean_facts = run(sweep, settings, True, 2)
    stock_stats, stock_episodes, stock_facts = run(sweep, settings, False, 2)

    assert lean_facts[:2] == ("TrialPPOModule", "TrialPPOLearner")
    assert stock_facts[:2] != lean_facts[:2]
    assert lean_facts[2] == stock_facts[2]  # the same network, layer by layer
    first_lean, first_stock = lean_episodes[0], stock_episodes[0]
    assert len(first_lean) == len(first_stock) >= 4
    for got, want in zip(first_lean, first_stock):
        np.testing.assert_array_equal(got.get_observations(), want.get_observations())
        np.testing.assert_array_equal(got.get_actions(), want.get_actions())
        np.testing.assert_array_equal(got.get_rewards(), want.get_rewards())
        np.testing.assert_allclose(got.get_extra_model_outputs("action_logp"),
                                   want.get_extra_model_outputs("action_logp"), rtol=1e-5,
                                   atol=1e-6)
    for key in COUNTS:
        assert [s[key] for s in lean_stats] == [s[key] for s in stock_stats], key
    for key in STATS:
        np.testing.assert_allclose(lean_stats[0][key], stock_stats[0][key], rtol=1e-4,
                                   atol=1e-6, err_msg=key)
        np.testing.assert_allclose(lean_stats[1][key], stock_stats[1][key], rtol=1e-2,
                                   atol=1e-4, err_msg=key)
