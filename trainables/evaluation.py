"""Score a policy on a whole data split: the numbers a user compares against buy-and-hold.

A policy is any function from a batch of observations ``(n, obs_dim)`` to greedy action indices
``(n,)`` into the env's exposure levels (``env.levels``; long-only: 0 = cash, 1 = long);
``as_policy`` turns an RLlib Algorithm or RLModule, or a ``Baseline``, into one. Evaluation runs
from the split's first bar to its last with no loss stopper and no random start, so a validation
score always covers the whole period.
"""
from __future__ import annotations

import csv
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from trainables.actions import action_levels, action_meanings, is_long_only
from trainables.settings import on_tensortrade

Policy = Callable[[np.ndarray], np.ndarray]
LONG_ONLY = action_levels("long_only")


@dataclass
class Evaluation:
    """Result of one greedy run over a split. Percentages are in percent, drawdown a fraction.

    ``positions`` are the signed exposures held coming into each bar (fractions of net worth:
    -1 all short, 0 cash, 1 all in), ``actions`` the action indices into ``levels``.
    ``time_in_market`` is the mean absolute exposure (the fraction of bars invested, long-only).
    The frictions' breakdown (``time_long``, ``time_short`` and the fees paid, in cash) is
    reported for the action sets and frictions beyond long-or-cash with commission only; it is
    None (and left out of :meth:`metrics`) for those, whose metrics stay as they always were.
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
    equity: np.ndarray = field(repr=False)
    positions: np.ndarray = field(repr=False)
    dates: list[str] = field(repr=False)
    closes: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    actions: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, dtype=np.int64))
    levels: tuple[float, ...] = field(repr=False, default=LONG_ONLY)
    # Against holding the asset: the Sharpe ratio, skewness and kurtosis of the active returns
    # (strategy minus buy-and-hold, bar by bar), and buy-and-hold's own per-bar Sharpe.
    active_sharpe_per_bar: float = 0.0
    active_skew: float = 0.0
    active_kurtosis: float = 3.0
    buy_and_hold_sharpe_per_bar: float = 0.0
    time_long: float | None = None
    time_short: float | None = None
    commission_paid: float | None = None
    slippage_paid: float | None = None
    borrow_paid: float | None = None

    def metrics(self) -> dict[str, float]:
        """The scalar metrics, for reporting to Tune and printing."""
        skip = {"equity", "positions", "dates", "split", "closes", "actions", "levels"}
        return {k: v for k, v in asdict(self).items() if k not in skip and v is not None}

    def bar_returns(self) -> np.ndarray:
        """The strategy's return over each bar of the run (net worth, fees included)."""
        return np.diff(self.equity) / self.equity[:-1]

    def per_bar(self) -> dict[str, list]:
        """One row per bar of the run, as columns: ``timestamp``, ``close``, ``action`` (the
        greedy action index at that bar's close, given ``position``; on the last bar, the
        action the policy would take next), for action sets other than long-only its
        ``action_meaning`` ("short 100%", "cash", "long 50%", ...), ``position`` (the signed
        exposure held coming into the bar: 0 cash, 1 all in, -1 all short), ``portfolio_value``
        (net worth at the bar's close, before that bar's trade) and ``buy_and_hold_value`` (the
        starting cash invested at the first bar's close, no commission, as
        ``buy_and_hold_pct`` counts it)."""
        n = len(self.equity)
        start = self.equity[0]
        actions = self.actions[:n].tolist()
        columns: dict[str, list] = {"timestamp": self.dates[:n], "close": self.closes[:n].tolist(),
                                    "action": actions}
        if not is_long_only(self.levels):
            meanings = action_meanings(self.levels)
            columns["action_meaning"] = [meanings[a] for a in actions]
        columns.update({
            "position": [_plain_number(p) for p in self.positions[:n]],
            "portfolio_value": self.equity.tolist(),
            "buy_and_hold_value": (start * self.closes[:n] / self.closes[0]).tolist()})
        return columns

    def write_actions(self, path: str | os.PathLike) -> None:
        """Write :meth:`per_bar` as a CSV file (header row, then one row per bar)."""
        columns = self.per_bar()
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(list(columns))
            writer.writerows(zip(*columns.values(), strict=True))


def _plain_number(value: float) -> int | float:
    """An exposure as a CSV shows it: 0, 1, -1 as integers, 0.5 as 0.5."""
    value = float(value)
    return int(value) if value.is_integer() else value


def level_index(levels: Sequence[float], exposure: float) -> int:
    """The index of ``exposure`` among the action set's ``levels``: the nearest level, which
    must be within float rounding of it (an exposure is always set from a level, but is compared
    by distance, never by float equality)."""
    distances = np.abs(np.asarray(levels, dtype=np.float64) - float(exposure))
    index = int(np.argmin(distances))
    if distances[index] > 1e-9:
        raise ValueError(f"exposure {exposure} is none of the action levels {tuple(levels)}")
    return index


@dataclass(frozen=True)
class Baseline:
    """A policy that ignores the market and holds one exposure level from the first bar on.

    ``level_of`` picks that level from the env's action set, so one baseline means the same
    position under every action set (its action index differs: cash is index 0 of long-only
    but index 1 of long-short).
    """

    name: str
    level_of: Callable[[tuple[float, ...]], float]

    def policy(self, levels: Sequence[float]) -> Policy:
        """The baseline as a policy over ``levels``: the index of its level for every bar."""
        index = level_index(levels, self.level_of(tuple(levels)))
        return lambda obs: np.full(len(obs), index, dtype=np.int64)


# Baselines: stay in cash; buy at the first bar and hold (all in where the action set allows
# it, else its largest level).
never_trade = Baseline("never_trade", lambda levels: 0.0)
always_long = Baseline("always_long", max)


def as_policy(agent: Any, levels: Sequence[float] = LONG_ONLY) -> Policy:
    """Wrap a batch function, an RLlib ``Algorithm`` or ``RLModule``, or a ``Baseline`` (for the
    action set ``levels``) as a greedy policy."""
    if isinstance(agent, Baseline):
        return agent.policy(levels)
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


def evaluate(policy: Any, env_config: dict[str, Any], split: str, delay: int = 0) -> Evaluation:
    """Run ``policy`` greedily over the whole ``split`` and measure the result. ``delay``: each
    decision is executed that many bars late (a cost stress; the position held meanwhile stays)."""
    from trainables.env import TradingEnv

    config = {**env_config, "split": split, "random_start": False, "max_allowed_loss": None,
              "max_episode_steps": None}
    env = TradingEnv(config)
    levels = tuple(env.levels)
    act = as_policy(policy, levels)
    # Greedy actions for every bar in every possible position (one batch per exposure level):
    # the rollout then only looks them up, in the column of the position it holds.
    table = np.stack([np.asarray(act(env.observations(level))).reshape(-1) for level in levels],
                     axis=1)
    env.reset(seed=0)
    equity = [env.net_worth]
    positions = [env.position]
    actions = []
    row = 0
    truncated = terminated = False
    pending = [level_index(levels, env.position)] * delay  # decided, not yet executed
    while not (terminated or truncated):
        pending.append(int(table[row, level_index(levels, env.position)]))
        actions.append(pending.pop(0))
        _, _, terminated, truncated, info = env.step(actions[-1])
        row += 1
        equity.append(info["net_worth"])
        positions.append(info["position"])
    # What the policy would do after the split.
    actions.append(int(table[row, level_index(levels, env.position)]))
    return _measure(env, split, np.asarray(equity), np.asarray(positions, dtype=np.float64),
                    info["trades"], np.asarray(actions, dtype=np.int64))


def _measure(env, split: str, equity: np.ndarray, positions: np.ndarray,
             trades: int, actions: np.ndarray) -> Evaluation:
    closes = env.market.bars["close"].to_numpy()[env.first_bar:env.end_bar]
    dates = [str(d) for d in env.market.bars.index[env.first_bar:env.end_bar]]
    returns = np.diff(equity) / equity[:-1]
    per_bar, skew, kurtosis = _moments(returns)
    held_asset = closes[:len(equity)]
    benchmark = np.diff(held_asset) / held_asset[:-1]
    active_per_bar, active_skew, active_kurtosis = _moments(returns - benchmark)
    drawdown = 1.0 - equity / np.maximum.accumulate(equity)
    held = positions[1:]  # the exposure held over each bar of the run
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
        time_in_market=float(np.abs(held).mean()) if len(held) else 0.0,
        buy_and_hold_pct=float((closes[-1] / closes[0] - 1.0) * 100.0),
        equity=equity,
        active_sharpe_per_bar=active_per_bar,
        active_skew=active_skew,
        active_kurtosis=active_kurtosis,
        buy_and_hold_sharpe_per_bar=_moments(benchmark)[0],
        positions=positions,
        dates=dates,
        closes=closes,
        actions=actions,
        levels=tuple(env.levels),
        **_frictions(env, held),
    )


def _moments(returns: np.ndarray) -> tuple[float, float, float]:
    """Per-bar Sharpe ratio, skewness and (non-excess) kurtosis of bar returns: the
    probabilistic and deflated Sharpe ratios need all three (0, 0, 3 for constant returns)."""
    std = float(np.std(returns)) if len(returns) else 0.0
    if std <= 0:
        return 0.0, 0.0, 3.0
    centred = (returns - returns.mean()) / std
    return (float(np.mean(returns) / std), float(np.mean(centred ** 3)),
            float(np.mean(centred ** 4)))


def _frictions(env, held: np.ndarray) -> dict[str, float]:
    """Time long and short and the fees paid over the run (the env's ``paid``), for
    the settings beyond long-or-cash with commission only (whose metrics stay unchanged)."""
    if on_tensortrade(env.settings):  # long-or-cash with commission only, as always
        return {}
    paid = env.paid
    return {"time_long": float((held > 0).mean()) if len(held) else 0.0,
            "time_short": float((held < 0).mean()) if len(held) else 0.0,
            "commission_paid": paid["commission"], "slippage_paid": paid["slippage"],
            "borrow_paid": paid["borrow"]}
