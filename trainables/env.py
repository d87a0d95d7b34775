"""The TradeTune trading environment: the one module that uses TensorTrade's env machinery.

TradeTune trains on TensorTrade's order-management machinery (exchange, wallets, portfolio,
broker) but wraps it in its own gymnasium env, because tensortrade 1.0.4 has defects that
would corrupt training and metrics (each is covered by a test in tests/trainables/test_env.py):

- the observation never contains the agent's own position -> we append it;
- the PBR reward fakes a short while in cash and ignores commission -> a log-return reward
  of net worth (scale-free, net of commission) is the default;
- running out of data is reported as ``terminated`` -> we report it as ``truncated``;
- ``random_start_pct`` keeps a sticky offset and ignores ``reset(seed=...)`` -> we pick the
  offset ourselves from the seeded ``np_random`` and build fresh TensorTrade state per episode;
- ``Wallet.ledger`` is a class attribute shared by every env in the process and grows forever
  -> every wallet gets its own no-op ledger;
- the action scheme logs one line per order and the first observations are zero-padded
  -> a quiet BSH subclass, and the feed is warmed up on bars before the episode start.

TensorTrade has no short selling, position sizes or slippage: with any ``env.actions`` but
``long_only``, or with ``env.slippage``, the env keeps its books with ``trainables.accounting``
instead (same observations, rewards and episode rules; the accounting rules are that module's).
"""
from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from trainables.accounting import Book, slippage_rates
from trainables.env_split import SplitSetup
from trainables.settings import ENV_DEFAULTS, REWARDS  # noqa: F401 (REWARDS re-exported)
from trainables.tensortrade_shim import import_tensortrade

import_tensortrade()

import tensortrade.env.default as tt_default  # noqa: E402
from tensortrade.env.default.actions import BSH  # noqa: E402
from tensortrade.env.default.rewards import PBR, TensorTradeRewardScheme  # noqa: E402
from tensortrade.env.default.stoppers import MaxLossStopper  # noqa: E402
from tensortrade.env.generic import Stopper  # noqa: E402
from tensortrade.feed.core import DataFeed, Stream  # noqa: E402
from tensortrade.oms.exchanges import Exchange, ExchangeOptions  # noqa: E402
from tensortrade.oms.instruments import BTC, USD, Instrument  # noqa: E402
from tensortrade.oms.services.execution.simulated import execute_order  # noqa: E402
from tensortrade.oms.wallets import Portfolio, Wallet  # noqa: E402
from tensortrade.oms.wallets.ledger import Ledger  # noqa: E402


class _PrivateLedger(Ledger):
    """A ledger that records nothing: TradeTune never reads ledgers, and the stock one grows."""

    def commit(self, wallet, quantity, source, target, memo) -> None:  # noqa: D102
        pass


class _QuietBSH(BSH):
    """Buy/sell/hold (1 = long, 0 = cash) without a log line per order or growing order books.

    Market orders fill completely inside ``broker.update()``, so executed orders and their trades
    can be dropped right away; the stock broker rescans all of them on every step. The
    commission of the dropped trades is added up first (``commission_paid``, in cash).
    """

    commission_paid = 0.0

    def perform(self, env, action) -> None:  # noqa: D102
        for order in self.get_orders(action, self.portfolio):
            if order:
                self.broker.submit(order)
        self.broker.update()
        for trades in self.broker.trades.values():
            for trade in trades:
                fee = float(trade.commission.size)
                self.commission_paid += fee if trade.is_buy else fee * float(trade.price)
        self.broker.executed.clear()
        self.broker.trades.clear()


class _ZeroReward(TensorTradeRewardScheme):
    """TensorTrade's env insists on a reward scheme; TradingEnv computes rewards itself."""

    def get_reward(self, portfolio) -> float:  # noqa: D102
        return 0.0


class _NeverStop(Stopper):
    """Episode ends are decided by TradingEnv (loss limit, end of data), not by TensorTrade."""

    def stop(self, env) -> bool:  # noqa: D102
        return False


class TradingEnv(SplitSetup, gym.Env):
    """A trading env over one data split, built from a plain config dict.

    Config keys: ``data`` (the sweep's data section, see ``trainables.market.prepare_market``),
    ``split`` (train|val|test) and the keys of ``ENV_DEFAULTS``. Observation: the last
    ``window_size`` feature rows, flattened, then the exposure level held (``position``: 0 cash,
    1 all long, -1 all short, ...). Action ``i``: hold exposure ``levels[i]`` of net worth
    (``trainables/actions.py``; ``long_only``: 0 = cash, 1 = the asset). Each reset builds
    fresh TensorTrade state, or a fresh ``Book`` where TensorTrade cannot model the trading.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, config: dict[str, Any] | None = None):
        self._set_up_split(dict(config or {}))
        self._features = self.market.features.to_numpy(dtype=np.float32)
        self._closes = self.market.bars["close"].to_numpy(dtype=np.float64)
        n_obs = self.window_size * self._features.shape[1] + 1
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(n_obs,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(len(self.levels))
        self.portfolio: Portfolio | None = None
        self._tt_env = None
        self._book: Book | None = None
        if not self.uses_tensortrade:
            self._slippage = slippage_rates(self._closes, self.settings["slippage"])
            self._borrow_per_bar = float(self.settings["borrow_rate"]) / self.market.periods_per_year

    # -- episode state ---------------------------------------------------------------------
    @property
    def position(self) -> float:
        """The exposure level held, as a fraction of net worth (long_only: 1.0 while holding
        the asset, 0.0 while in cash)."""
        if self._book is not None:
            return float(self._book.level[0])
        return float(self._scheme.action) if self._tt_env is not None else 0.0

    @property
    def net_worth(self) -> float:
        """Portfolio value in cash at the current bar's close."""
        if self._book is not None:
            return float(self._book.net_worth(self._closes[self._bar:self._bar + 1])[0])
        return float(self.portfolio.net_worth)

    @property
    def paid(self) -> dict[str, float]:
        """Costs paid this episode, in cash: ``commission``, ``slippage``, ``borrow``."""
        if self._book is not None:
            return {"commission": float(self._book.commission[0]),
                    "slippage": float(self._book.slippage[0]),
                    "borrow": float(self._book.borrow[0])}
        paid = self._scheme.commission_paid if self._tt_env is not None else 0.0
        return {"commission": paid, "slippage": 0.0, "borrow": 0.0}

    @property
    def bar(self) -> int:
        """Row position (into ``market.bars``) of the current bar."""
        return self._bar

    def _build_tensortrade(self, first_bar: int) -> None:
        prices = self._closes[first_bar:self.end_bar].tolist()
        price = Stream.source(prices, dtype="float").rename("USD-BTC")
        options = ExchangeOptions(commission=self.commission)
        exchange = Exchange("exchange", service=execute_order, options=options)(price)
        cash = Wallet(exchange, self.initial_cash * USD)
        asset = Wallet(exchange, 0 * BTC)
        for wallet in (cash, asset):
            wallet.ledger = _PrivateLedger()
        self.portfolio = Portfolio(USD, [cash, asset])
        self._scheme = _QuietBSH(cash=cash, asset=asset)
        marker = Stream.source(list(range(len(prices))), dtype="float").rename("bar")
        self._tt_env = tt_default.create(
            portfolio=self.portfolio, action_scheme=self._scheme, reward_scheme=_ZeroReward(),
            feed=DataFeed([marker]), window_size=1, stopper=_NeverStop())

    def _observation(self) -> np.ndarray:
        window = self._features[self._bar - self.window_size + 1:self._bar + 1]
        return np.append(window.ravel(), np.float32(self.position)).astype(np.float32)

    def observations(self, position: float) -> np.ndarray:
        """The observation of every bar of the split from ``first_bar`` on, for one position
        (an exposure level of ``levels``).

        Only the position part of an observation depends on the agent's actions, so a greedy
        policy can be evaluated on one batch per level instead of one forward pass per bar.
        """
        n_features = self._features.shape[1]
        windows = np.lib.stride_tricks.sliding_window_view(
            self._features[self.first_bar - self.window_size + 1:self.end_bar],
            (self.window_size, n_features))[:, 0]
        flat = windows.reshape(len(windows), self.window_size * n_features)
        column = np.full((len(flat), 1), position, dtype=np.float32)
        return np.concatenate([flat, column], axis=1).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode at the split's first bar, or at a seeded random bar when
        ``random_start`` is on (training), with fresh TensorTrade state."""
        super().reset(seed=seed)
        first = self.first_bar
        if self.settings["random_start"]:
            latest = max(self.first_bar, self.end_bar - 2 - self._min_episode_bars())
            first = int(self.np_random.integers(self.first_bar, latest + 1))
        if self.uses_tensortrade:
            self._build_tensortrade(first)
            self._tt_env.reset()
        else:
            self._book = Book(1)
            self._book.start(slice(None), self.initial_cash)
        self._bar = first
        self._steps = 0
        self._trades = 0
        return self._observation(), self._info()

    def _min_episode_bars(self) -> int:
        cap = self.settings["max_episode_steps"]
        return int(cap) if cap else (self.end_bar - self.first_bar) // 2

    def step(self, action):
        """Hold exposure ``levels[action]`` from this bar's close to the next one's (long_only:
        cash (0) or the asset (1))."""
        action = int(action)
        before_worth, before_position = self.net_worth, self.position
        price_before = self._closes[self._bar]
        if self._book is None:
            self._tt_env.step(action)
            self._bar += 1
        else:
            self._trade_on_book(self.levels[action])
        self._steps += 1
        if self.position != before_position:
            self._trades += 1
        worth = self.net_worth
        if self.settings["reward"] == "log_return":
            # Floored: TensorTrade's cent rounding can leave exactly 0, and log(0) raises.
            reward = math.log(max(worth / before_worth, 1e-6))
        else:  # the tutorial's PBR: price change times +1 (long) or -1 (cash, a fake short)
            reward = (self._closes[self._bar] - price_before) * (1.0 if self.position else -1.0)
        # A wiped-out portfolio cannot trade again: terminal even without a loss limit.
        floor = (-math.inf if self.max_allowed_loss is None
                 else self.initial_cash * (1.0 - float(self.max_allowed_loss)))
        terminated = worth <= 0 or worth < floor
        cap = self.settings["max_episode_steps"]
        truncated = not terminated and (self._bar >= self.end_bar - 1
                                        or (cap is not None and self._steps >= int(cap)))
        return self._observation(), float(reward), bool(terminated), bool(truncated), self._info()

    def _trade_on_book(self, target: float) -> None:
        """One step on the ``Book``: rebalance at this close, then the next close's borrow."""
        book, one = self._book, np.ones(1, dtype=bool)
        price = self._closes[self._bar:self._bar + 1]
        book.rebalance(one & (book.level != target), np.full(1, target), price,
                       self.commission, self._slippage[self._bar:self._bar + 1])
        self._bar += 1
        book.charge_borrow(one, self._closes[self._bar:self._bar + 1], self._borrow_per_bar)

    def _info(self) -> dict[str, Any]:
        return {"net_worth": self.net_worth, "position": self.position, "bar": self._bar,
                "trades": self._trades, "initial_cash": self.initial_cash}


def make_env(config: dict[str, Any] | None = None) -> TradingEnv:
    """Env factory for RLlib (``config.environment(env=make_env, env_config=...)``)."""
    return TradingEnv(dict(config or {}))
