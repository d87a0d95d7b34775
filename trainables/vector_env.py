"""N trading envs stepped at once with array operations: what trials sample from by default.

``VectorTradingEnv`` is a gymnasium ``VectorEnv`` with exactly the semantics of N copies of
``trainables.env.TradingEnv`` in RLlib's default ``SyncVectorEnv`` (next-step autoreset, sub-env
``i`` seeded ``seed + i``). The reference env stays the one that runs TensorTrade's order
machinery; ``tests/trainables/test_vector_env.py`` drives both with the same seeds and actions
and requires identical observations, rewards, episode ends and net worth.

This module must not import tensortrade. What it reproduces of TensorTrade 1.0.4 (market orders
through ``BSH``, ``proportion_order``, ``execute_order`` and ``Wallet.transfer``):

- balances are exact decimals: USD in cents, BTC in satoshis (here: int64 counts);
- orders fill at the bar's close rounded to cents (half-even), never at the raw float;
- one order moves at most 1,000,000 USD (``ExchangeOptions.max_trade_size``): a buy spends at
  most that much cash, a sell sells at most ``floor(1e6 / price)`` BTC, the rest stays put;
- commission is taken from what is sent, ``round(amount * commission)`` in the sent currency,
  at least one cent or satoshi when the commission is above 0; the rest converts at the price,
  rounded half-even to satoshis (buy) or cents (sell);
- an action that asks for a trade from an empty wallet does nothing and keeps the position;
- net worth is ``cash + close * btc`` in floats, at the close of the bar after the step.

Like the reference, an env whose trading TensorTrade cannot model (any ``env.actions`` but
``long_only``, or ``env.slippage``) keeps its books with ``trainables.accounting`` instead.

TensorTrade rounds the commission from a 28-digit decimal product. The float product here gives
the same result except within a hair of a half-unit tie; those rare trades (and every trade at
commission 0.5, where ties happen) are recomputed with ``decimal`` exactly as TensorTrade does,
including its one odd outcome: when the two roundings lose a unit, the order never completes
and its funds stay locked in the wallets (still counted in net worth, never tradable again).
"""
from __future__ import annotations

import math
from decimal import Decimal, localcontext
from typing import Any, Mapping

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from trainables.accounting import Book, slippage_rates
from trainables.actions import action_meanings
from trainables.env_split import SplitSetup
from trainables.errors import ConfigError

CENTS = 100  # USD precision 2
SATS = 100_000_000  # BTC precision 8
MAX_TRADE_CENTS = 1_000_000 * CENTS  # TensorTrade's default max_trade_size, 1e6 USD
MAX_TRADE_VALUE = MAX_TRADE_CENTS * SATS  # the same limit in cents x satoshis
INFO_KEYS = ("net_worth", "position", "bar", "trades", "initial_cash")


def _round_div(numerator: np.ndarray, denominator: np.ndarray | int) -> np.ndarray:
    """``numerator / denominator`` rounded half to even, in exact integer arithmetic."""
    quotient, remainder = np.divmod(numerator, denominator)
    twice = 2 * remainder
    up = (twice > denominator) | ((twice == denominator) & (quotient % 2 == 1))
    return quotient + up


def _cents(value: float) -> int:
    """A float in USD as TensorTrade quantizes it: its exact binary value to cents, half-even."""
    return int(Decimal(value).quantize(Decimal("0.01")).scaleb(2))


def _exact_fill(amount: int, price_cents: int, commission: float,
                buy: bool) -> tuple[int, int, int]:
    """One fill computed with ``decimal`` as TensorTrade does: (sent, converted, stuck).

    ``amount`` is what the order locked (cents for a buy, satoshis for a sell); ``sent`` is
    what left the source wallet (fee included), ``converted`` what arrived in the target wallet,
    ``stuck`` what stays locked in the source wallet when the order cannot complete.
    """
    places = 2 if buy else 8
    unit = Decimal(10) ** -places
    with localcontext() as context:
        context.prec, context.rounding = 28, "ROUND_HALF_EVEN"
        filled = Decimal(amount).scaleb(-places)
        fee = Decimal(commission) * filled
        if commission > 0 and fee < unit:
            fee = unit
        quantity = (filled - fee).quantize(unit)
        fee = fee.quantize(unit)
        locked = filled - fee
        # Wallet.withdraw takes at most what is locked (it tolerates a shortfall of 1 unit).
        quantity = min(quantity, locked)
        price = Decimal(price_cents).scaleb(-2)
        if buy:
            converted = (quantity / price).quantize(Decimal(10) ** -8)
        else:
            converted = (quantity * price).quantize(Decimal("0.01"))
        stuck = locked - quantity
    target_places = 8 if buy else 2
    return (int((quantity + fee).scaleb(places)), int(converted.scaleb(target_places)),
            int(stuck.scaleb(places)))


class VectorTradingEnv(SplitSetup, VectorEnv):
    """``num_envs`` trading envs over one data split, stepped together.

    Config: the same dict as ``TradingEnv`` (``data``, ``split`` and the ``ENV_DEFAULTS``
    keys), plus ``num_envs``, which is how RLlib's ``vector_entry_point`` mode passes it (see
    ``trainables/rllib_trainable.py``). Each sub-env has its own random generator, seeded like
    a ``TradingEnv``'s.
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, config: Mapping[str, Any] | None = None, num_envs: int | None = None):
        config = dict(config or {})
        num_envs = config.pop("num_envs", 1) if num_envs is None else num_envs
        if int(num_envs) < 1:
            raise ConfigError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = int(num_envs)
        self._set_up_split(config)
        settings = self.settings
        self._level_values = np.asarray(self.levels, dtype=np.float64)
        self._random_start = bool(settings["random_start"])
        cap = settings["max_episode_steps"]
        self._cap = None if cap is None else int(cap)
        self._latest_start = max(self.first_bar, self.end_bar - 2 - (
            int(cap) if cap else (self.end_bar - self.first_bar) // 2))
        self._floor = (-math.inf if self.max_allowed_loss is None
                       else self.initial_cash * (1.0 - float(self.max_allowed_loss)))
        self._log_return = settings["reward"] == "log_return"
        self._initial_cents = _cents(self.initial_cash)

        features = self.market.features.to_numpy(dtype=np.float32)
        self._closes = self.market.bars["close"].to_numpy(dtype=np.float64)
        # Window i of this view ends at bar first_bar + i: observations are gathered, not built.
        n_features = features.shape[1]
        self._windows = np.lib.stride_tricks.sliding_window_view(
            features[self.first_bar - self.window_size + 1:self.end_bar],
            (self.window_size, n_features))[:, 0]
        self._obs_size = self.window_size * n_features + 1
        # The price every order of this split fills at, in cents (only bars that can trade).
        self._price_cents = np.zeros(len(self._closes), dtype=np.int64)
        self._price_cents[self.first_bar:self.end_bar] = [
            _cents(close) for close in self._closes[self.first_bar:self.end_bar].tolist()]

        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(self._obs_size,),
                                                       dtype=np.float32)
        self.single_action_space = gym.spaces.Discrete(len(self.levels))
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

        n = self.num_envs
        self._rngs: list[np.random.Generator | None] = [None] * n
        self._bar = np.full(n, self.first_bar, dtype=np.int64)
        self._steps = np.zeros(n, dtype=np.int64)
        self._trades = np.zeros(n, dtype=np.int64)
        self._position = np.zeros(n, dtype=np.float64)  # the exposure level held
        # Wallets: free and locked (by orders that never completed) cents and satoshis.
        self._cash = np.zeros(n, dtype=np.int64)
        self._cash_locked = np.zeros(n, dtype=np.int64)
        self._btc = np.zeros(n, dtype=np.int64)
        self._btc_locked = np.zeros(n, dtype=np.int64)
        self._worth = np.zeros(n, dtype=np.float64)
        self._autoreset = np.zeros(n, dtype=bool)
        self._book: Book | None = None
        if not self.uses_tensortrade:
            self._book = Book(n)
            self._slippage = slippage_rates(self._closes, settings["slippage"])
            self._borrow_per_bar = float(settings["borrow_rate"]) / self.market.periods_per_year

    # -- episode state ---------------------------------------------------------------------
    @property
    def net_worth(self) -> np.ndarray:
        """Each sub-env's portfolio value in cash at its current bar's close."""
        return self._worth.copy()

    @property
    def position(self) -> np.ndarray:
        """The exposure level each sub-env holds (long_only: 1.0 the asset, 0.0 cash)."""
        return self._position.copy()

    @property
    def bar(self) -> np.ndarray:
        """Row position (into ``market.bars``) of each sub-env's current bar."""
        return self._bar.copy()

    def _value(self, index: np.ndarray | slice) -> np.ndarray:
        if self._book is not None:
            return self._book.net_worth(self._closes[self._bar[index]], index)
        usd = (self._cash[index] + self._cash_locked[index]) / CENTS
        btc = (self._btc[index] + self._btc_locked[index]) / SATS
        return usd + self._closes[self._bar[index]] * btc

    def _observations(self) -> np.ndarray:
        obs = np.empty((self.num_envs, self._obs_size), dtype=np.float32)
        obs[:, :-1] = self._windows[self._bar - self.first_bar].reshape(self.num_envs, -1)
        obs[:, -1] = self._position
        return obs

    def _infos(self) -> dict[str, Any]:
        every = np.ones(self.num_envs, dtype=bool)
        infos = {"net_worth": self._worth.copy(), "position": self._position.copy(),
                 "bar": self._bar.copy(), "trades": self._trades.copy(),
                 "initial_cash": np.full(self.num_envs, self.initial_cash)}
        infos.update({f"_{key}": every for key in INFO_KEYS})
        return infos

    def _start(self, envs: np.ndarray, seeds: list[int | None]) -> None:
        """Reset the sub-envs ``envs`` (indices): seeded start bar, fresh wallets."""
        for i, seed in zip(envs.tolist(), seeds):
            if seed is not None or self._rngs[i] is None:
                self._rngs[i], _ = seeding.np_random(seed)
            first = self.first_bar
            if self._random_start:
                first = int(self._rngs[i].integers(self.first_bar, self._latest_start + 1))
            self._bar[i] = first
        for state in (self._steps, self._trades, self._position, self._cash_locked, self._btc,
                      self._btc_locked):
            state[envs] = 0
        self._cash[envs] = self._initial_cents
        if self._book is not None:
            self._book.start(envs, self.initial_cash)
        self._worth[envs] = self._value(envs)
        self._autoreset[envs] = False

    def reset(self, *, seed: int | list[int | None] | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every sub-env; an int ``seed`` seeds sub-env ``i`` with ``seed + i``, as
        ``SyncVectorEnv`` does (``options`` are ignored, as ``TradingEnv`` ignores them)."""
        if seed is None:
            seeds: list[int | None] = [None] * self.num_envs
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"got {len(seeds)} seeds for {self.num_envs} envs")
        self._start(np.arange(self.num_envs), seeds)
        return self._observations(), self._infos()

    def restart(self, envs: np.ndarray) -> np.ndarray:
        """Start the sub-envs ``envs`` (indices) over now and return every sub-env's
        observation: what a same-step autoreset adapter needs (Stable-Baselines3's ``VecEnv``
        in ``scripts/bench_peer.py``). Their next ``step`` then uses their action; the
        sub-envs' generators go on as a next-step autoreset would use them."""
        envs = np.asarray(envs, dtype=np.int64)
        self._start(envs, [None] * len(envs))
        return self._observations()

    # -- trading ---------------------------------------------------------------------------
    def _fill(self, buys: np.ndarray, sells: np.ndarray) -> None:
        """Fill the market orders of the sub-envs flagged in ``buys`` and ``sells`` (boolean
        masks) at their bar's close; the arithmetic is TensorTrade's (see the module doc)."""
        trading = buys | sells
        price = np.where(trading, self._price_cents[self._bar], 1)
        if not price.all():
            raise ValueError("Price of trading pair USD/BTC is 0 (at cent precision); check "
                             "the input data so that there always is a valid (nonzero) price")
        held = np.where(buys, self._cash, np.where(sells, self._btc, 0))
        amount = np.where(buys, np.minimum(held, MAX_TRADE_CENTS),
                          np.where(held < -(-MAX_TRADE_VALUE // price), held,
                                   MAX_TRADE_VALUE // price))
        amount[~trading] = 0
        fee = np.zeros_like(amount)
        if self.commission > 0:
            exact = amount * self.commission
            fee[trading] = np.maximum(np.rint(exact[trading]), 1)
            # Within a hair of a half-unit tie (or of the one-unit minimum), the float product
            # may round differently from TensorTrade's decimal one: recompute those exactly.
            slack = 1e-9 * np.maximum(exact, 1.0)
            odd = trading & ((np.abs(exact - np.floor(exact) - 0.5) <= slack)
                             | (np.abs(exact - 1.0) <= slack))
        else:
            odd = np.zeros(self.num_envs, dtype=bool)
        sent = amount - fee
        # Buys convert cents to satoshis at the price, sells satoshis to cents.
        converted = _round_div(np.where(buys, sent * SATS, sent * price),
                               np.where(buys, price, SATS))
        stuck = np.zeros_like(amount)
        for k in np.flatnonzero(odd).tolist():
            total, converted[k], stuck[k] = _exact_fill(int(amount[k]), int(price[k]),
                                                        self.commission, bool(buys[k]))
            assert total + stuck[k] == amount[k]
        landed = np.where(stuck == 0, converted, 0)
        locked = converted - landed
        self._cash += np.where(buys, -amount, landed)
        self._btc += np.where(buys, landed, -amount)
        self._cash_locked += np.where(buys, stuck, locked)
        self._btc_locked += np.where(buys, locked, stuck)

    def step(self, actions) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                     dict[str, Any]]:
        """Hold exposure ``levels[action]`` (long_only: cash (0) or the asset (1)) from each
        bar's close to the next one's; a sub-env whose episode ended on the previous step is
        reset instead (its action is ignored)."""
        actions = np.asarray(actions).reshape(self.num_envs)
        restart = self._autoreset
        live = ~restart
        if (((actions < 0) | (actions >= len(self.levels))) & live).any():
            choices = [f"{i} ({meaning})" for i, meaning in enumerate(action_meanings(self.levels))]
            raise ValueError(f"actions must be {', '.join(choices[:-1])} or {choices[-1]}, got "
                             f"{actions}")
        if self._book is None:
            long = self._position == 1
            buys = live & (actions == 1) & ~long & (self._cash != 0)
            sells = live & (actions == 0) & long & (self._btc != 0)
            trading = buys | sells
            if trading.any():
                self._fill(buys, sells)
                self._position[trading] = actions[trading]
        else:
            targets = self._level_values[np.where(live, actions, 0)]
            trading = live & (targets != self._position)
            self._book.rebalance(trading, targets, self._closes[self._bar], self.commission,
                                 self._slippage[self._bar])
            self._position = self._book.level.copy()
        self._trades += trading

        before = self._worth
        price_before = self._closes[self._bar]
        self._bar += live
        if self._book is not None:
            self._book.charge_borrow(live, self._closes[self._bar], self._borrow_per_bar)
        self._steps += live
        worth = self._value(slice(None))
        self._worth = np.where(live, worth, before)
        if self._log_return:
            # Python floats and math.log, as the reference env: bit-identical rewards.
            rewards = np.array([math.log(max(w / b, 1e-6)) if go else 0.0
                                for w, b, go in zip(worth.tolist(), before.tolist(),
                                                    live.tolist())])
        else:
            sign = np.where(self._position == 1, 1.0, -1.0)
            rewards = np.where(live, (self._closes[self._bar] - price_before) * sign, 0.0)
        terminated = live & ((worth <= 0) | (worth < self._floor))
        out_of_time = self._bar >= self.end_bar - 1
        if self._cap is not None:
            out_of_time |= self._steps >= self._cap
        truncated = live & ~terminated & out_of_time

        if restart.any():
            envs = np.flatnonzero(restart)
            self._start(envs, [None] * len(envs))
        self._autoreset = terminated | truncated
        return self._observations(), rewards, terminated, truncated, self._infos()
