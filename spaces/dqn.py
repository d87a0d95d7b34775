"""DQN search space (RLlib new API stack, torch).

Ranges follow rl-baselines3-zoo's ``sample_dqn_params`` (and the TensorTrade tutorial for the
env dimensions). Each dimension names its source. Market frictions are never searched.
"""
from __future__ import annotations

from typing import Any

from spaces.algorithm import ACTIONS, Algorithm
from spaces.dimensions import Categorical, Domain, Float, Int

ALGORITHM = Algorithm(
    name="dqn",
    rllib_config="ray.rllib.algorithms.dqn:DQNConfig",
    greedy=ACTIONS,
    tiny={"train_batch_size": 32, "hidden_width": 16, "hidden_layers": 1, "window_size": 5,
          "replay_capacity": 10_000, "epsilon_timesteps": 1000},
    # A one-iteration tiny trial that trades on validation (67 trades, 80% in the market).
    tiny_seed=5,
)

TUTORIAL = "TensorTrade tutorial train_optuna.py"
ZOO = "rl-baselines3-zoo sample_dqn_params"

DIMENSIONS = {
    "lr": Float(1e-5, 1e-3, log=True, source=ZOO,
                domain=Domain(0, low_open=True, what="a learning rate")),
    "gamma": Float(0.95, 0.999, source=ZOO,
                   domain=Domain(0, 1, low_open=True, what="a discount factor")),
    "train_batch_size": Categorical((32, 64, 128, 256), source=ZOO,
                                    domain=Domain(1, what="env steps per training batch")),
    "target_network_update_freq": Int(500, 10_000, log=True, source=ZOO,
                                      domain=Domain(1, what="env steps between target updates")),
    "replay_capacity": Int(10_000, 200_000, log=True, source=ZOO,
                           domain=Domain(1, what="transitions in the replay buffer")),
    "n_step": Int(1, 5, source="Rainbow (Hessel et al. 2018) uses 3",
                  domain=Domain(1, what="steps of the n-step return")),
    "epsilon_final": Float(0.01, 0.2, source=ZOO,
                           domain=Domain(0, 1, what="an exploration probability")),
    "epsilon_timesteps": Int(1_000, 50_000, log=True, source=ZOO,
                             domain=Domain(1, what="env steps of the exploration schedule")),
    "double_q": Categorical((True, False), source="RLlib DQN option"),
    "dueling": Categorical((True, False), source="RLlib DQN option"),
    "hidden_width": Categorical((32, 64, 128, 256), source=ZOO,
                                domain=Domain(1, what="units per layer")),
    "hidden_layers": Int(1, 3, source=ZOO,
                         domain=Domain(1, what="hidden layers")),
    "window_size": Int(5, 30, source=TUTORIAL,
                       domain=Domain(1, what="bars in an observation")),
    "max_allowed_loss": Float(0.1, 0.5, source=TUTORIAL,
                              domain=Domain(0, 1, low_open=True, what="share of the cash an episode may lose")),
}


def build(p: dict[str, Any]) -> dict[str, Any]:
    """Turn sampled parameters into RLlib ``training``/``model`` settings and env settings."""
    return {
        "training": {
            "lr": p["lr"], "gamma": p["gamma"],
            "train_batch_size_per_learner": p["train_batch_size"],
            "target_network_update_freq": p["target_network_update_freq"],
            "replay_buffer_config": {"type": "PrioritizedEpisodeReplayBuffer",
                                     "capacity": p["replay_capacity"]},
            "n_step": p["n_step"],
            "epsilon": [(0, 1.0), (p["epsilon_timesteps"], p["epsilon_final"])],
            "double_q": p["double_q"], "dueling": p["dueling"],
        },
        "model": {"fcnet_hiddens": [p["hidden_width"]] * p["hidden_layers"],
                  "fcnet_activation": "relu"},
        "env": {"window_size": p["window_size"], "max_allowed_loss": p["max_allowed_loss"]},
    }
