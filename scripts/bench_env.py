"""Environment steps per second, layer by layer, on the real Coinbase BTC/USD hourly data.

(a) the bare tutorial TensorTrade env (Stream prices, Exchange with commission, wallets, PBR,
    BSH, ``tensortrade.env.default.create`` with window_size 17), random actions;
(b) TradeTune's ``TradingEnv`` (the training config: random starts, loss limit), random actions;
(c) sampling through an RLlib ``SingleAgentEnvRunner`` (new API stack, PPO with the tutorial's
    settings from the PPO search space), with 1 env per runner and with ``--envs`` envs.

Every layer runs on the training split of the same file with the same commission. Each line
shows steps per second and the ratio to (a). Run: ``.venv/bin/python scripts/bench_env.py``.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CSV = REPO / "examples" / "data" / "Coinbase_BTCUSD_1h.csv.gz"
WINDOW_SIZE = 17
MAX_ALLOWED_LOSS = 0.32


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV,
                        help=f"bar CSV to step through (default: {DEFAULT_CSV})")
    parser.add_argument("--envs", type=int, default=8,
                        help="envs per env runner for the vectorised RLlib line (default: 8)")
    parser.add_argument("--steps", type=int, default=20_000,
                        help="env steps timed per layer (default: 20000)")
    parser.add_argument("--commission", type=float, default=0.001,
                        help="exchange commission for every layer (default: 0.001)")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch CPU threads for the RLlib lines (default: 1, as in a Ray "
                             "trial with one CPU, where Ray sets OMP_NUM_THREADS=1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random actions")
    args = parser.parse_args(argv)
    if args.envs < 1 or args.steps < 100 or args.torch_threads < 1:
        parser.error("--envs and --torch-threads must be >= 1 and --steps >= 100")
    if not args.csv.is_file():
        parser.error(f"no such file: {args.csv} (give one with --csv)")
    return args


def plain_tutorial_env(closes, features, commission: float):
    """The tutorial's factory, component by component, as a user of TensorTrade 1.0.4 writes it."""
    import trainables.env  # noqa: F401  (the tensortrade import shim)
    from tensortrade.env import default
    from tensortrade.env.default.actions import BSH
    from tensortrade.env.default.rewards import PBR
    from tensortrade.feed.core import DataFeed, Stream
    from tensortrade.oms.exchanges import Exchange, ExchangeOptions
    from tensortrade.oms.instruments import BTC, USD
    from tensortrade.oms.services.execution.simulated import execute_order
    from tensortrade.oms.wallets import Portfolio, Wallet

    price = Stream.source(list(closes), dtype="float").rename("USD-BTC")
    exchange = Exchange("coinbase", service=execute_order,
                        options=ExchangeOptions(commission=commission))(price)
    cash = Wallet(exchange, 10_000 * USD)
    asset = Wallet(exchange, 0 * BTC)
    portfolio = Portfolio(USD, [cash, asset])
    feed = DataFeed([Stream.source(list(features[column]), dtype="float").rename(column)
                     for column in features.columns])
    reward_scheme = PBR(price=price)
    action_scheme = BSH(cash=cash, asset=asset).attach(reward_scheme)
    return default.create(portfolio=portfolio, action_scheme=action_scheme,
                          reward_scheme=reward_scheme, feed=feed, window_size=WINDOW_SIZE,
                          max_allowed_loss=MAX_ALLOWED_LOSS)


def time_random_steps(env, steps: int, seed: int) -> tuple[float, int]:
    """Steps per second of ``steps`` random actions, resetting at each episode end."""
    import numpy as np

    actions = np.random.default_rng(seed).integers(0, 2, size=steps)
    env.reset(seed=seed)
    episodes = 1
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(int(action))
        if terminated or truncated:
            env.reset()
            episodes += 1
    return steps / (time.perf_counter() - start), episodes


def time_env_runner(config, steps: int) -> float:
    """Steps per second of ``SingleAgentEnvRunner.sample`` (after one warm-up sample)."""
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    runner = SingleAgentEnvRunner(config=config)
    try:
        runner.sample(num_timesteps=min(1000, steps), random_actions=False)
        start = time.perf_counter()
        episodes = runner.sample(num_timesteps=steps, random_actions=False)
        elapsed = time.perf_counter() - start
        sampled = sum(len(episode) for episode in episodes)
    finally:
        runner.stop()
    return sampled / elapsed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    sys.path.insert(0, str(REPO))

    from spaces import get_space
    from trainables.market import prepare_market
    from trainables.env import TradingEnv
    from trainables.rllib_trainable import algorithm_config

    data = {"path": str(args.csv)}
    market = prepare_market(data)
    start, end = market.splits["train"]
    print(f"data: {args.csv.name}, train split {end - start} bars "
          f"({market.bars.index[start]:%Y-%m-%d} to {market.bars.index[end - 1]:%Y-%m-%d}), "
          f"{market.features.shape[1]} features, window {WINDOW_SIZE}, "
          f"commission {args.commission:g}, {args.steps} steps per layer")

    lines = []
    closes = market.bars["close"].iloc[start:end].to_numpy()
    plain = plain_tutorial_env(closes, market.features.iloc[start:end], args.commission)
    rate, episodes = time_random_steps(plain, args.steps, args.seed)
    lines.append(("(a) plain TensorTrade env, random actions", rate, f"{episodes} episodes"))

    env_settings = {"data": data, "window_size": WINDOW_SIZE, "commission": args.commission,
                    "max_allowed_loss": MAX_ALLOWED_LOSS}
    ours = TradingEnv({**env_settings, "random_start": True})
    rate, episodes = time_random_steps(ours, args.steps, args.seed)
    lines.append(("(b) TradeTune TradingEnv, random actions", rate, f"{episodes} episodes"))

    import torch

    torch.set_num_threads(args.torch_threads)
    space = get_space("ppo")
    settings = space.replay(space.first_params)
    for envs in dict.fromkeys((1, args.envs)):
        sweep = {"algorithm": "ppo", "data": data, "env": {"commission": args.commission},
                 "training": {"envs_per_runner": envs}}
        config = algorithm_config("ppo", settings, sweep, seed=args.seed)
        rate = time_env_runner(config, args.steps)
        lines.append((f"(c) RLlib SingleAgentEnvRunner.sample, {envs} env(s) per runner", rate,
                      f"PPO tutorial settings, torch, {args.torch_threads} thread(s)"))

    base = lines[0][1]
    width = max(len(name) for name, _, _ in lines)
    for name, rate, note in lines:
        print(f"{name:<{width}}  {rate:9,.0f} steps/s  {rate / base:5.2f}x (a)  [{note}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
