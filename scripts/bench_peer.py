"""Training speed of a trial against the peer users would pick instead: Stable-Baselines3.

Side by side in one process, one torch thread, alternating rounds (TradeTune, SB3, TradeTune,
...); each round builds both learners fresh, runs one warm-up iteration and then
``--iterations`` timed ones. Printed per side: whole-iteration env steps/s, learning s and
sampling s per iteration (medians over all timed iterations of all rounds), and the ratios
TradeTune / SB3 for steps/s and SB3 / TradeTune for the times, so >= 1.0 means the trial is at
least as fast. Target (issue 25): whole-iteration ratio >= 1.0 for PPO at the tutorial point
and at the ``small`` and ``large`` points below; DQN is reported without a target.

TradeTune's side is a trial's own algorithm: ``algorithm_config`` of
``trainables/rllib_trainable.py``, built by RLlib, sampling the trial's default env
(``VectorTradingEnv`` of ``training.envs_per_runner`` = 8 markets) through RLlib's env runner.
Its sampling time is ``EnvRunner.sample`` and its learning time ``LearnerGroup.update`` (what
RLlib's ``env_runner_sampling_timer`` and ``learner_update_timer`` time), both timed here per
call; the iteration is the whole ``algo.train()``.

SB3's side steps the very same env: the class and config are read from that AlgorithmConfig
(one place builds the env), wrapped in a thin ``VecEnv`` adapter that resets a finished
sub-env in the same step (SB3's autoreset) and passes the last observation and the truncation
flag on, as SB3 expects. Its collection time is ``collect_rollouts``, its learning time
``train()`` (timed by a callback), its iteration one whole pass of ``learn``'s loop.

Same work, PPO (checked by ``--check``, which prints the counts of both sides):
- samples per iteration: RLlib collects ``train_batch_size`` env steps (8 envs x 250 steps at
  the tutorial point); SB3 ``n_steps = batch / 8`` per env, 8 envs;
- epochs and minibatches: both ``num_epochs`` passes of ``batch / minibatch`` shuffled
  minibatches, one Adam step each (optimizer steps counted with a global torch hook);
- network: a trial's model config leaves RLlib's ``vf_share_layers`` off, so the policy and
  the value function each have their own MLP trunk (hidden sizes and activation of the point)
  and a linear head; SB3 gets ``net_arch={"pi": hiddens, "vf": hiddens}`` with the same
  activation: the same layers, parameter for parameter (shapes printed by ``--check``);
- GAE: both with the point's gamma and lambda, values bootstrapped at truncation, none at
  termination; advantages standardised (RLlib over the batch, SB3 per minibatch). SB3 computes
  the values in its rollout forward and GAE at the end of collection (counted in its sampling
  time); RLlib in one value pass over the batch and its learner connectors (counted in its
  learning time), so compare the whole iteration;
- losses: clipped surrogate with the point's clip and entropy coefficient, value loss weight
  1.0 (RLlib's ``vf_loss_coeff``; SB3's ``vf_coef`` set to match). Left as each library
  defines them: RLlib adds its KL penalty (``kl_coeff`` 0.2) and clips the value loss at
  ``vf_clip_param`` 10; SB3 clips the gradient norm (``max_grad_norm``, here infinite, so it
  never binds). These cost a few tensor operations per minibatch, not a pass over the data.

DQN (no target): RLlib's DQN as a trial builds it, against SB3's DQN with the same network
(plain Q MLP: no dueling, no double Q, as SB3's), batch, learning rate, gamma, target update
period, epsilon schedule and replay ratio (env steps per gradient step and gradient steps per
iteration are read from RLlib's first iteration and given to SB3 as ``train_freq``). RLlib's
trial uses a prioritised replay buffer (the DQN space fixes it), SB3 a uniform one.

    ./tt python scripts/bench_peer.py [--points tutorial small large] [--rounds 3]
        [--iterations 4] [--dqn] [--check]
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_CSV = REPO / "examples" / "data" / "Coinbase_BTCUSD_1h.csv.gz"

# Points of the PPO space (spaces/ppo.py): the tutorial's, and a small and a large corner of
# the cost dimensions (batch, epochs, minibatches, network, window); the rest as the tutorial.
SMALL = {"train_batch_size": 1000, "num_minibatches": 2, "num_epochs": 3, "hidden_width": 32,
         "hidden_layers": 1, "activation": "relu", "window_size": 5}
LARGE = {"train_batch_size": 8000, "num_minibatches": 16, "num_epochs": 10,
         "hidden_width": 256, "hidden_layers": 3, "activation": "relu", "window_size": 30}
# One DQN point (spaces/dqn.py ranges) that SB3's DQN can match: no dueling, no double Q.
DQN_POINT = {"lr": 1e-4, "gamma": 0.99, "train_batch_size": 32,
             "target_network_update_freq": 1000, "replay_capacity": 50_000, "n_step": 1,
             "epsilon_final": 0.05, "epsilon_timesteps": 10_000, "double_q": False,
             "dueling": False, "hidden_width": 64, "hidden_layers": 2, "window_size": 17,
             "max_allowed_loss": 0.32}


@dataclass
class Timings:
    """Per-iteration seconds and env steps of one side, over all timed iterations."""

    whole: list[float] = field(default_factory=list)
    sampling: list[float] = field(default_factory=list)
    learning: list[float] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)

    def add(self, whole: float, sampling: float, learning: float, steps: int) -> None:
        self.whole.append(whole)
        self.sampling.append(sampling)
        self.learning.append(learning)
        self.steps.append(steps)

    def rate(self) -> float:
        """Median whole-iteration env steps per second."""
        return statistics.median(s / w for s, w in zip(self.steps, self.whole))


class StepCounter:
    """Counts optimizer steps of every torch optimizer in the process (a global hook)."""

    def __init__(self) -> None:
        from torch.optim.optimizer import register_optimizer_step_post_hook

        self.count = 0
        self._handle = register_optimizer_step_post_hook(self._hook)

    def _hook(self, *args: Any) -> None:
        self.count += 1

    def close(self) -> None:
        self._handle.remove()


# -- TradeTune (RLlib) ---------------------------------------------------------------------
def trial_config(algorithm: str, params: dict[str, Any], csv: Path):
    """The AlgorithmConfig a trial with sampled ``params`` trains with, on the train split."""
    from spaces import get_space
    from trainables.rllib_trainable import algorithm_config

    space = get_space(algorithm)
    settings = space.replay(params)
    sweep = {"algorithm": algorithm, "data": {"path": str(csv)}, "env": {}, "training": {}}
    return algorithm_config(algorithm, settings, sweep, seed=0), settings


def _timed(record: list[float], fn: Callable) -> Callable:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            record.append(time.perf_counter() - start)
    return wrapper


def rllib_round(config, warmup: int, iterations: int, timings: Timings,
                check: dict[str, Any] | None = None) -> None:
    """Build the trial's algorithm, run ``warmup`` + ``iterations`` ``train()`` calls, record
    the timed ones; with ``check``, record what one iteration does."""
    from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED

    algo = config.build_algo()
    samples: list[float] = []
    learns: list[float] = []
    runner = algo.env_runner_group.local_env_runner
    runner.sample = _timed(samples, runner.sample)
    algo.learner_group.update = _timed(learns, algo.learner_group.update)
    try:
        for i in range(warmup + iterations):
            samples.clear()
            learns.clear()
            last = i == warmup + iterations - 1  # (DQN: after learning has started)
            counter = StepCounter() if check is not None and last else None
            start = time.perf_counter()
            result = algo.train()
            whole = time.perf_counter() - start
            steps = int(result["env_runners"][NUM_ENV_STEPS_SAMPLED])
            if counter is not None:
                counter.close()
                module = algo.learner_group._learner.module["default_policy"]
                check.update(steps=steps, optimizer_steps=counter.count,
                             parameters=sum(p.numel() for p in module.parameters()),
                             layers=[tuple(p.shape) for p in module.parameters()],
                             trained=result["learners"]["default_policy"].get(
                                 "num_module_steps_trained"))
            if i >= warmup:
                timings.add(whole, sum(samples), sum(learns), steps)
    finally:
        algo.stop()


# -- Stable-Baselines3 -----------------------------------------------------------------------
def sb3_vec_env(config):
    """The trial's env (class and config from its AlgorithmConfig) as an SB3 ``VecEnv``."""
    import numpy as np
    from stable_baselines3.common.vec_env import VecEnv

    env = config.env(dict(config.env_config, num_envs=config.num_envs_per_env_runner))

    class Adapter(VecEnv):
        """SB3's same-step autoreset over ``VectorTradingEnv``'s next-step one."""

        def __init__(self) -> None:
            super().__init__(env.num_envs, env.single_observation_space,
                             env.single_action_space)
            self._actions = None

        def reset(self):
            obs, _ = env.reset(seed=self._seeds[0] if self._seeds[0] is not None else None)
            self._reset_seeds()
            return obs

        def step_async(self, actions) -> None:
            self._actions = actions

        def step_wait(self):
            obs, rewards, terminated, truncated, _ = env.step(self._actions)
            done = terminated | truncated
            infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
            if done.any():
                ended = np.flatnonzero(done)
                for i in ended.tolist():
                    infos[i] = {"terminal_observation": obs[i],
                                "TimeLimit.truncated": bool(truncated[i] and not terminated[i])}
                obs = env.restart(ended)
            return obs, rewards.astype(np.float32), done, infos

        def close(self) -> None:
            env.close()

        def get_attr(self, name, indices=None):
            return [getattr(env, name)] * len(self._get_indices(indices))

        def set_attr(self, name, value, indices=None) -> None:
            setattr(env, name, value)

        def env_method(self, name, *args, indices=None, **kwargs):
            return [getattr(env, name)(*args, **kwargs)] * len(self._get_indices(indices))

        def env_is_wrapped(self, wrapper_class, indices=None):
            return [False] * len(self._get_indices(indices))

    return Adapter()


def activation(name: str):
    """The torch activation class RLlib's ``fcnet_activation`` names."""
    import torch.nn as nn

    return {"tanh": nn.Tanh, "relu": nn.ReLU}[name]


class IterationTimer:
    """SB3 callback: per-iteration collection and learning seconds from its hooks."""

    def __new__(cls, *args: Any, **kwargs: Any):
        from stable_baselines3.common.callbacks import BaseCallback

        class Timer(BaseCallback):
            def __init__(self) -> None:
                super().__init__()
                self.marks: list[tuple[str, float]] = []

            def _on_rollout_start(self) -> None:
                self.marks.append(("start", time.perf_counter()))

            def _on_rollout_end(self) -> None:
                self.marks.append(("collected", time.perf_counter()))

            def _on_step(self) -> bool:
                return True

            def _on_training_end(self) -> None:
                self.marks.append(("start", time.perf_counter()))

            def iterations(self) -> list[tuple[float, float]]:
                """(collection s, learning s) per iteration, from the marks."""
                starts = [t for kind, t in self.marks if kind == "start"]
                ends = [t for kind, t in self.marks if kind == "collected"]
                return [(end - start, following - end)
                        for start, end, following in zip(starts, ends, starts[1:])]

        return Timer()


def sb3_ppo(config, settings: dict[str, Any]):
    """SB3's PPO with the trial's hyperparameters on the trial's env."""
    from stable_baselines3 import PPO

    training, model = settings["training"], settings["model"]
    envs = config.num_envs_per_env_runner
    return PPO(
        "MlpPolicy", sb3_vec_env(config), learning_rate=training["lr"],
        n_steps=training["train_batch_size_per_learner"] // envs,
        batch_size=training["minibatch_size"], n_epochs=training["num_epochs"],
        gamma=training["gamma"], gae_lambda=training["lambda_"],
        clip_range=training["clip_param"], ent_coef=training["entropy_coeff"],
        vf_coef=config.vf_loss_coeff, max_grad_norm=math.inf, normalize_advantage=True,
        policy_kwargs={"net_arch": {"pi": model["fcnet_hiddens"], "vf": model["fcnet_hiddens"]},
                       "activation_fn": activation(model["fcnet_activation"])},
        seed=0, device="cpu", verbose=0)


def sb3_dqn(config, settings: dict[str, Any], rllib_check: dict[str, Any]):
    """SB3's DQN matched to the trial's DQN, with RLlib's measured replay ratio."""
    from stable_baselines3 import DQN

    training, model = settings["training"], settings["model"]
    envs = config.num_envs_per_env_runner
    steps, updates = rllib_check["steps"], max(1, rllib_check["optimizer_steps"])
    (_, _), (eps_steps, eps_final) = training["epsilon"]
    return DQN(
        "MlpPolicy", sb3_vec_env(config), learning_rate=training["lr"],
        buffer_size=training["replay_buffer_config"]["capacity"],
        learning_starts=config.num_steps_sampled_before_learning_starts,
        batch_size=training["train_batch_size_per_learner"], gamma=training["gamma"],
        train_freq=max(1, round(steps / updates / envs)), gradient_steps=1,
        target_update_interval=training["target_network_update_freq"],
        exploration_fraction=min(1.0, eps_steps / (steps * 5)), exploration_final_eps=eps_final,
        max_grad_norm=math.inf,
        policy_kwargs={"net_arch": model["fcnet_hiddens"],
                       "activation_fn": activation(model["fcnet_activation"])},
        seed=0, device="cpu", verbose=0)


def sb3_round(build: Callable[[], Any], batch: int, warmup: int, iterations: int,
              timings: Timings, check: dict[str, Any] | None = None) -> None:
    """Build SB3's model, ``learn`` for ``warmup`` + ``iterations`` iterations of ``batch``
    env steps, record the timed ones."""
    model = build()
    timer = IterationTimer()
    counter = StepCounter() if check is not None else None
    marks: list[float] = []
    model.learn(total_timesteps=batch * (warmup + iterations), callback=timer)
    starts = [t for kind, t in timer.marks if kind == "start"]
    marks = [b - a for a, b in zip(starts, starts[1:])]
    if counter is not None:
        counter.close()
        policy = model.policy
        params = [p for p in policy.parameters()
                  if not hasattr(model, "q_net_target")
                  or all(p is not q for q in model.q_net_target.parameters())]
        check.update(steps=batch, optimizer_steps=counter.count // (warmup + iterations),
                     parameters=sum(p.numel() for p in params),
                     layers=[tuple(p.shape) for p in params])
    # PPO: one collection per iteration; DQN: one per ``train_freq``, summed to ``batch``.
    pairs = timer.iterations()
    group = max(1, len(pairs) // (warmup + iterations))
    for i in range(warmup, warmup + iterations):
        part = slice(i * group, (i + 1) * group)
        timings.add(sum(marks[part]), sum(c for c, _ in pairs[part]),
                    sum(learn for _, learn in pairs[part]), batch)
    model.env.close()


# -- the comparison --------------------------------------------------------------------------
def compare(name: str, rllib: Callable[[Timings, dict | None], None],
            sb3: Callable[[Timings, dict | None], None], rounds: int, check: bool) -> float:
    """Alternate the two sides for ``rounds`` rounds; print medians and ratios; return the
    whole-iteration ratio (TradeTune steps/s over SB3's)."""
    ours, peer = Timings(), Timings()
    for r in range(rounds):
        first = check and r == 0
        ours_check: dict[str, Any] | None = {} if first else None
        peer_check: dict[str, Any] | None = {} if first else None
        rllib(ours, ours_check)
        sb3(peer, peer_check)
        print(f"  round {r + 1}: TradeTune {statistics.median(ours.whole[-1:]):.3f} s/it, "
              f"SB3 {statistics.median(peer.whole[-1:]):.3f} s/it", flush=True)
        if first:
            for side, facts in (("TradeTune", ours_check), ("SB3", peer_check)):
                print(f"  check {side}: env steps/iteration {facts['steps']}, optimizer "
                      f"steps/iteration {facts['optimizer_steps']}, parameters "
                      f"{facts['parameters']:,} {facts['layers']}"
                      + (f", trained steps {facts['trained']}" if facts.get("trained") else ""))
    med = statistics.median
    ratio = ours.rate() / peer.rate()
    print(f"{name}:")
    for side, t in (("TradeTune (RLlib)", ours), ("Stable-Baselines3", peer)):
        print(f"  {side:<18} {t.rate():7,.0f} env steps/s  iteration {med(t.whole):.3f} s  "
              f"learning {med(t.learning):.3f} s  sampling {med(t.sampling):.3f} s  "
              f"({len(t.whole)} iterations, {med(t.steps)} steps each)")
    print(f"  ratios (>= 1: TradeTune faster): whole iteration {ratio:.2f}, learning "
          f"{med(peer.learning) / med(ours.learning):.2f}, sampling "
          f"{med(peer.sampling) / med(ours.sampling):.2f}", flush=True)
    return ratio


def ppo_point(point: str) -> dict[str, Any]:
    from spaces.ppo import TUTORIAL_PARAMS

    return {**TUTORIAL_PARAMS, **{"tutorial": {}, "small": SMALL, "large": LARGE}[point]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--points", nargs="*", default=["tutorial", "small", "large"],
                        choices=["tutorial", "small", "large"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--dqn", action="store_true", help="also compare DQN (no target)")
    parser.add_argument("--check", action="store_true",
                        help="print what each side does in an iteration (first round)")
    args = parser.parse_args()
    if args.rounds < 1 or args.iterations < 1:
        parser.error("--rounds and --iterations must be >= 1")

    import logging
    import warnings

    import ray
    import torch

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    torch.set_num_threads(1)  # as in a one-CPU trial (Ray sets OMP_NUM_THREADS=1 there)
    ray.init(num_cpus=1, include_dashboard=False, logging_level=logging.ERROR,
             log_to_driver=False)
    print(f"data: {args.csv.name} train split; {args.rounds} rounds x {args.iterations} "
          f"iterations after {args.warmup} warm-up; 1 torch thread")
    try:
        for point in args.points:
            params = ppo_point(point)
            config, settings = trial_config("ppo", params, args.csv)
            batch = settings["training"]["train_batch_size_per_learner"]
            name = (f"PPO {point}: batch {batch} = {params['num_minibatches']} x "
                    f"{settings['training']['minibatch_size']}, {params['num_epochs']} epochs, "
                    f"{settings['model']['fcnet_hiddens']} {params['activation']}, window "
                    f"{params['window_size']}")
            print(name, flush=True)
            compare(
                name,
                lambda t, c: rllib_round(config, args.warmup, args.iterations, t, c),
                lambda t, c: sb3_round(lambda: sb3_ppo(config, settings), batch, args.warmup,
                                       args.iterations, t, c),
                args.rounds, args.check)
        if args.dqn:
            config, settings = trial_config("dqn", DQN_POINT, args.csv)
            facts: dict[str, Any] = {}
            rllib_round(config, 2, 0, Timings(), facts)  # RLlib's replay ratio, for SB3
            batch = facts["steps"]
            name = (f"DQN (no target): {batch} env steps and {facts['optimizer_steps']} "
                    f"gradient steps of batch {DQN_POINT['train_batch_size']} per iteration, "
                    f"{settings['model']['fcnet_hiddens']} relu")
            print(name, flush=True)
            compare(
                name,
                lambda t, c: rllib_round(config, args.warmup, args.iterations, t, c),
                lambda t, c: sb3_round(lambda: sb3_dqn(config, settings, facts), batch,
                                       args.warmup, args.iterations, t, c),
                args.rounds, args.check)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
