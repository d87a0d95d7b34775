"""The TradeTune trading environment: the one module that imports tensortrade.

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
"""
from __future__ import annotations

import math
import sys
import types
from typing import Any

import gymnasium as gym
import numpy as np


def _import_tensortrade() -> None:
    """Import tensortrade without its TensorFlow agents.

    ``tensortrade/__init__`` imports ``tensortrade.agents``, which imports TensorFlow. TensorFlow
    is deliberately not installed (next to RLlib it makes torch segfault), so a placeholder module
    stands in for the deprecated agents package before the first import.
    """
    if "tensortrade.agents" not in sys.modules:
        sys.modules["tensortrade.agents"] = types.ModuleType("tensortrade.agents")
    import tensortrade  # noqa: F401


_import_tensortrade()

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


def synthetic_ohlcv(n_bars: int, seed: int, freq: str = "1h", base_price: float = 10_000.0):
    """OHLCV bars from TensorTrade's geometric Brownian motion, reproducible from ``seed``.

    Drift is zero and hourly volatility about 0.6% (BTC-like), so no strategy has an edge by
    construction: the synthetic default exercises the machinery, it is not a market to beat.
    TensorTrade's generator draws from numpy's global random state; it is seeded here and
    restored afterwards. Its volume noise is unseeded, so volume is drawn from ``seed`` instead.
    """
    from tensortrade.stochastic import gbm
    from tensortrade.stochastic.utils.helpers import get_delta, scale_times_to_generate
    from tensortrade.stochastic.utils.parameters import default

    params = default(base_price, scale_times_to_generate(n_bars, freq), get_delta(freq))
    params.gbm_mu = 0.0
    params.all_sigma = 0.06
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        frame = gbm(base_price=base_price, base_volume=1_000, start_date="2020-01-01",
                    start_date_format="%Y-%m-%d", times_to_generate=n_bars, time_frame=freq,
                    params=params)
    finally:
        np.random.set_state(state)
    frame = frame.iloc[:n_bars].copy()
    frame["volume"] = np.random.default_rng(seed).lognormal(mean=7.0, sigma=0.5, size=len(frame))
    frame.index.name = "date"
    return frame
