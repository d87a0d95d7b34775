"""Score a policy on a whole data split: the numbers a user compares against buy-and-hold.

A policy is any function from a batch of observations ``(n, obs_dim)`` to greedy actions
``(n,)`` (0 = cash, 1 = long); ``as_policy`` turns an RLlib Algorithm or RLModule into one.
Evaluation runs from the split's first bar to its last with no loss stopper and no random start,
so a validation score always covers the whole period.
"""
from __future__ import annotations

import csv
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

Policy = Callable[[np.ndarray], np.ndarray]


@dataclass
class Evaluation:
    """Result of one greedy run over a split. Percentages are in percent, drawdown a fraction.

    ``time_in_market`` is the share of bars held with any exposure (long or short),
    ``time_short`` the share held short; ``commission_paid``, ``slippage_paid`` and
    ``borrow_paid`` are the costs of the run in cash, each apart (slippage and borrowing are 0
    unless ``env.slippage`` or a short position charges them).
    """

    split: str
    bars: int
    final_net_worth: float
    pnl: float
    pnl_pct: float
    sharpe: float
    sharpe_per_bar: float
    return_skew: float
    return_kurtosis: float
    max_drawdown: float
    trades: int
    time_in_market: float
    buy_and_hold_pct: float
    time_short: float
    commission_paid: float
    slippage_paid: float
    borrow_paid: float
    equity: np.ndarray = field(repr=False)
    positions: np.ndarray = field(repr=False)
    dates: list[str] = field(repr=False)
    closes: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    actions: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, dtype=np.int64))

    def metrics(self) -> dict[str, float]:
        """The scalar metrics, for reporting to Tune and printing."""
        skip = {"equity", "positions", "dates", "split", "closes", "actions"}
        return {k: v for k, v in asdict(self).items() if k not in skip}

    def per_bar(self) -> dict[str, list]:
        """One row per bar of the run, as columns: ``timestamp``, ``close``, ``action`` (the
        greedy action at that bar's close, given ``position``; on the last bar, the action the
        policy would take next), ``position`` (the exposure level held coming into the bar:
        0 cash, 1 all long, -1 all short, 0.5 half long),
        ``portfolio_value`` (net worth at the bar's close, before that bar's trade) and
        ``buy_and_hold_value`` (the starting cash invested at the first bar's close, no
        commission, as ``buy_and_hold_pct`` counts it)."""
        n = len(self.equity)
        start = self.equity[0]
        # Whole exposure levels as whole numbers (long_only's 0 and 1 read as they always did).
        positions = [int(p) if float(p).is_integer() else float(p)
                     for p in self.positions[:n].tolist()]
        return {"timestamp": self.dates[:n], "close": self.closes[:n].tolist(),
                "action": self.actions[:n].tolist(), "position": positions,
                "portfolio_value": self.equity.tolist(),
                "buy_and_hold_value": (start * self.closes[:n] / self.closes[0]).tolist()}

    def write_actions(self, path: str | os.PathLike) -> None:
        """Write :meth:`per_bar` as a CSV file (header row, then one row per bar)."""
        columns = self.per_bar()
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(list(columns))
            writer.writerows(zip(*columns.values(), strict=True))


def as_policy(agent: Any) -> Policy:
    """Wrap a batch function, an RLlib ``Algorithm`` or an ``RLModule`` as a greedy policy."""
    if hasattr(agent, "get_module"):
        agent = agent.get_module()
    if hasattr(agent, "forward_inference"):
        module = agent

        def greedy(obs: np.ndarray) -> np.ndarray:
            import torch

            with torch.no_grad():
                return greedy_actions(module, torch.as_tensor(obs)).numpy()

        return greedy
    if callable(agent):
        return agent
    raise TypeError(f"cannot evaluate {type(agent).__name__}: expected a function of an "
                    "observation batch, an RLlib Algorithm or an RLModule")


def greedy_actions(module: Any, obs: Any) -> Any:
    """The greedy actions (int64 torch tensor) of an RLlib RLModule for a batch of observations.

    Each algorithm's space declares how its module's ``forward_inference`` output gives the
    greedy action (``spaces/algorithm.py``: the ``actions`` themselves, or the argmax of
    ``action_dist_inputs``); the first declared reading whose column the output has is used,
    actions a module picked itself before scores, as RLlib's own env runner does. Evaluation
    and the ONNX export both read actions here, so every registered algorithm is scored and
    exported the same way.
    """
    from spaces import greedy_readings

    out = module.forward_inference({"obs": obs})
    for reading in greedy_readings():
        if reading.key in out:
            return reading.read(out)
    raise KeyError(f"no registered greedy reading fits {type(module).__name__}'s inference "
                   f"output (columns {sorted(out)}); declare it in the algorithm's space")


def evaluate(policy: Any, env_config: dict[str, Any], split: str) -> Evaluation:
    """Run ``policy`` greedily over the whole ``split`` and measure the result."""
    from trainables.env import TradingEnv

    config = {**env_config, "split": split, "random_start": False, "max_allowed_loss": None,
              "max_episode_steps": None}
    env = TradingEnv(config)
    act = as_policy(policy)
    # Greedy actions for every bar at every exposure level: the rollout only looks them up.
    table = np.stack([np.asarray(act(env.observations(level))).reshape(-1)
                      for level in env.levels], axis=1)
    column = {level: i for i, level in enumerate(env.levels)}
    env.reset(seed=0)
    equity = [env.net_worth]
    positions = [env.position]
    actions = []
    row = 0
    truncated = terminated = False
    while not (terminated or truncated):
        actions.append(int(table[row, column[env.position]]))
        _, _, terminated, truncated, info = env.step(actions[-1])
        row += 1
        equity.append(info["net_worth"])
        positions.append(info["position"])
    actions.append(int(table[row, column[env.position]]))  # what it would do after the split
    return _measure(env, split, np.asarray(equity), np.asarray(positions), info["trades"],
                    np.asarray(actions, dtype=np.int64))


def _measure(env, split: str, equity: np.ndarray, positions: np.ndarray,
             trades: int, actions: np.ndarray) -> Evaluation:
    closes = env.market.bars["close"].to_numpy()[env.first_bar:env.end_bar]
    dates = [str(d) for d in env.market.bars.index[env.first_bar:env.end_bar]]
    returns = np.diff(equity) / equity[:-1]
    std = float(np.std(returns))
    per_bar = float(np.mean(returns) / std) if std > 0 else 0.0
    # Skewness and (non-excess) kurtosis of bar returns: the deflated Sharpe ratio needs them.
    skew = float(np.mean(((returns - returns.mean()) / std) ** 3)) if std > 0 else 0.0
    kurtosis = float(np.mean(((returns - returns.mean()) / std) ** 4)) if std > 0 else 3.0
    drawdown = 1.0 - equity / np.maximum.accumulate(equity)
    paid = env.paid
    return Evaluation(
        split=split,
        bars=len(equity),
        final_net_worth=float(equity[-1]),
        pnl=float(equity[-1] - env.initial_cash),
        pnl_pct=float((equity[-1] / env.initial_cash - 1.0) * 100.0),
        sharpe=per_bar * math.sqrt(env.market.periods_per_year),
        sharpe_per_bar=per_bar,
        return_skew=skew,
        return_kurtosis=kurtosis,
        max_drawdown=float(drawdown.max()),
        trades=int(trades),
        time_in_market=float((positions[1:] != 0).mean()) if len(positions) > 1 else 0.0,
        buy_and_hold_pct=float((closes[-1] / closes[0] - 1.0) * 100.0),
        time_short=float((positions[1:] < 0).mean()) if len(positions) > 1 else 0.0,
        commission_paid=paid["commission"],
        slippage_paid=paid["slippage"],
        borrow_paid=paid["borrow"],
        equity=equity,
        positions=positions,
        dates=dates,
        closes=closes,
        actions=actions,
    )


def never_trade(obs: np.ndarray) -> np.ndarray:
    """Baseline: stay in cash."""
    return np.zeros(len(obs), dtype=np.int64)


def always_long(obs: np.ndarray) -> np.ndarray:
    """Baseline: buy at the first bar and hold."""
    return np.ones(len(obs), dtype=np.int64)
