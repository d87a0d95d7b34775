"""APPO's own declarations: what a TradeTune trial needs beyond RLlib's APPO defaults."""
from __future__ import annotations

from search.config.sweep_config import load_config
from spaces import get_space
from trainables.rllib_trainable import algorithm_config


def test_appo_trains_in_the_trial_process_and_iterates_by_steps_not_seconds():
    import optuna

    sweep = load_config(None, ["study=appo", "algorithm=appo"])
    space = get_space("appo")
    settings = space(optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask())
    config = algorithm_config("appo", settings, sweep, seed=0)
    # RLlib's APPO asks for 2 remote env runners and 1 remote learner: CPUs a trial does not hold.
    assert config.num_env_runners == 0 and config.num_learners == 0
    # RLlib's APPO iterates for 10 s: an iteration's size would depend on the machine.
    assert not config.min_time_s_per_iteration
    assert config.min_sample_timesteps_per_iteration == 1000
    assert config.train_batch_size_per_learner == settings["training"][
        "train_batch_size_per_learner"]
    assert config.vtrace  # IMPALA/APPO on the new API stack refuse vtrace=False
    config.validate()
