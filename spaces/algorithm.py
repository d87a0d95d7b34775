"""What the trainable, evaluation and export must know about an algorithm, declared by its space.

Each space module (``spaces/ppo.py``, ...) defines ``ALGORITHM = Algorithm(...)`` beside its
dimensions; nothing else in TradeTune names an algorithm. Plain data, no ray import: the query
commands read it too.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Greedy:
    """How to read the greedy action from the RLModule's ``forward_inference`` output.

    ``key``: the output column holding it; ``argmax``: whether that column holds per-action
    scores (logits, Q-values) whose argmax is the action, or the actions themselves.
    """

    key: str
    argmax: bool

    def read(self, out: dict[str, Any]) -> Any:
        """The greedy actions (int64 torch tensor) from a ``forward_inference`` output."""
        value = out[self.key]
        return value.argmax(dim=-1) if self.argmax else value.long()


# RLlib's inference contract: a module that picks its own action (DQN: the argmax of its
# Q-values) returns ``actions``; a policy-gradient module returns the logits of its
# categorical action distribution, whose argmax is the greedy action.
ACTIONS = Greedy("actions", argmax=False)
LOGITS = Greedy("action_dist_inputs", argmax=True)


@dataclass(frozen=True)
class Algorithm:
    """One algorithm's facts, beyond its search space.

    Args:
        name: the ``algorithm:`` value of a sweep config (lower case).
        rllib_config: ``"module:Class"`` of its RLlib ``AlgorithmConfig`` (an import string, so
            ``spaces/`` stays free of ray).
        greedy: how evaluation and the ONNX export read its greedy action.
        rllib_calls: ``{method: kwargs}`` of further ``AlgorithmConfig`` calls the trainable
            makes for it, e.g. ``{"learners": {"num_learners": 0}}``; applied after
            TradeTune's own settings (one local env runner, torch, seed) and before the
            trial's searched ``training`` settings.
        tiny: space overrides (``search.space_overrides``) that train in seconds, for tests and
            smoke runs; ``tiny_seed``: a ``search.seed`` whose one-iteration tiny trial on
            the tests' synthetic market keeps a policy that trades.
    """

    name: str
    rllib_config: str
    greedy: Greedy
    rllib_calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    tiny: dict[str, Any] = field(default_factory=dict)
    tiny_seed: int = 0

    @property
    def config_class_name(self) -> str:
        """``PPOConfig`` of ``ray.rllib.algorithms.ppo:PPOConfig``."""
        return self.rllib_config.partition(":")[2]

    @property
    def config_module(self) -> str:
        """``ray.rllib.algorithms.ppo`` of ``ray.rllib.algorithms.ppo:PPOConfig``."""
        return self.rllib_config.partition(":")[0]

    def config_class(self) -> type:
        """The RLlib ``AlgorithmConfig`` class (imports RLlib)."""
        return getattr(importlib.import_module(self.config_module), self.config_class_name)
