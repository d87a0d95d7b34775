"""Portfolio accounting for exposure levels other than long-or-cash, and for slippage.

TensorTrade 1.0.4 has no margin, borrowing or slippage, so both envs (``trainables/env.py`` and
``trainables/vector_env.py``) keep their books here whenever ``env.actions`` is not
``long_only`` or ``env.slippage`` charges anything; plain long-or-cash without slippage keeps
running on TensorTrade's order machinery. A ``Book`` holds N portfolios as arrays, so one env
and N vectorised envs do exactly the same float arithmetic.

The rules, per portfolio (all amounts in the quote currency, float64, no rounding):

- A portfolio holds ``cash`` and ``units`` of the asset; ``units < 0`` is a short (the sale's
  proceeds sit in cash). Net worth at price ``p`` is ``W = cash + units * p``.
- An action picks an exposure level ``e`` (``trainables/actions.py``). When ``e`` differs from
  the level held, the portfolio trades at the bar's close ``p`` so that after the trade's costs
  it holds exactly ``e`` of its net worth in the asset. While the level stays the same nothing
  trades and the real exposure drifts with the price (a long of 0.5 grows in a rally), as a
  trader holding a position would; levels 0 and 1 never drift.
- Costs come out of the trade, at rate ``k = commission + slippage`` per unit of notional: a
  buy of notional ``N`` pays ``N`` cash and receives ``N * (1 - k) / p`` units; a sale of
  notional ``N`` gives ``N / p`` units and receives ``N * (1 - k)`` cash. Either way net worth
  drops by ``k * N``, of which ``commission * N`` is commission and the rest slippage. This is
  how TensorTrade charges commission, so levels (0, 1) reproduce its long-or-cash net worth (to
  its rounding of balances to cents and satoshis). With ``gap = e * W - units * p`` the
  notional that lands on ``e`` is ``gap / (1 - k + e * k)`` for a buy (``gap > 0``) and
  ``-gap / (1 - e * k)`` for a sale: all cash into a long (``e = 1``) buys with all the cash,
  a move to cash sells or covers every unit.
- Slippage per unit of turnover at bar ``t`` is ``bps / 10_000 + vol_mult * vol[t]``, with
  ``vol[t]`` the (population) standard deviation of the last ``vol_window`` close-to-close log
  returns up to bar ``t`` (fewer at the start of the data; 0 at the first bar), capped at
  ``MAX_SLIPPAGE``.
- A short pays a borrow fee at each close it is held through: ``borrow_rate / bars_per_year``
  times the short's notional at that close (``-units * p``), taken from cash.
- Net worth is marked at each close after the fee. A net worth at or below zero ends the
  episode (the envs' wipe-out rule); nothing here models margin calls before that.
"""
from __future__ import annotations

import numpy as np

# With commission below settings.MAX_COMMISSION (0.25), this cap keeps every trade's sizing well
# defined: its divisor 1 - k + e * k stays above 0.3.
MAX_SLIPPAGE = 0.1  # slippage per unit of turnover is capped at 10% of the notional


def volatility(closes: np.ndarray, window: int) -> np.ndarray:
    """Per bar, the population standard deviation of the last ``window`` log returns up to it
    (of as many as exist before bar ``window``; 0 at bar 0)."""
    closes = np.asarray(closes, dtype=np.float64)
    returns = np.zeros(len(closes))
    returns[1:] = np.log(closes[1:] / closes[:-1])
    vol = np.zeros(len(closes))
    for t in range(1, min(window, len(closes))):  # the first bars: fewer returns
        vol[t] = float(np.std(returns[1:t + 1]))
    if len(closes) > window:
        full = np.lib.stride_tricks.sliding_window_view(returns[1:], window)
        vol[window:] = np.std(full, axis=1)
    return vol


def slippage_rates(closes: np.ndarray, slippage: dict) -> np.ndarray:
    """Slippage per unit of turnover at each bar, for completed ``env.slippage`` settings."""
    rates = np.full(len(closes), float(slippage["bps"]) / 10_000.0)
    if slippage["vol_mult"]:
        rates = rates + float(slippage["vol_mult"]) * volatility(closes, int(slippage["vol_window"]))
    return np.minimum(rates, MAX_SLIPPAGE)


class Book:
    """N portfolios' cash, units, held exposure level and the costs paid, as float64 arrays.

    The costs (``commission``, ``slippage``, ``borrow``) accumulate per episode, in currency.
    """

    def __init__(self, n: int):
        self.cash = np.zeros(n)
        self.units = np.zeros(n)
        self.level = np.zeros(n)
        self.commission = np.zeros(n)
        self.slippage = np.zeros(n)
        self.borrow = np.zeros(n)

    def start(self, envs: np.ndarray | slice, cash: float) -> None:
        """Fresh portfolios for ``envs``: all in cash, flat, nothing paid."""
        for state in (self.units, self.level, self.commission, self.slippage, self.borrow):
            state[envs] = 0.0
        self.cash[envs] = cash

    def net_worth(self, price: np.ndarray, envs: np.ndarray | slice = slice(None)) -> np.ndarray:
        """The value of portfolios ``envs`` (all by default) at ``price``, one per portfolio."""
        return self.cash[envs] + self.units[envs] * price

    def rebalance(self, trading: np.ndarray, targets: np.ndarray, price: np.ndarray,
                  commission: float, slippage: np.ndarray) -> None:
        """Move the portfolios flagged in ``trading`` to exposure ``targets`` at ``price``,
        paying ``commission`` and ``slippage`` (one rate per portfolio) on the notional."""
        gap = np.where(trading, targets * self.net_worth(price) - self.units * price, 0.0)
        cost = commission + slippage
        buys = gap > 0
        notional = np.abs(gap) / np.where(buys, 1.0 - cost + targets * cost, 1.0 - targets * cost)
        self.cash -= np.where(buys, notional, -notional * (1.0 - cost))
        self.units += np.where(buys, notional * (1.0 - cost), -notional) / price
        # A move to cash leaves no float residue of units (it would be charged borrow).
        self.units[trading & (targets == 0)] = 0.0
        self.commission += commission * notional
        self.slippage += slippage * notional
        self.level = np.where(trading, targets, self.level)

    def charge_borrow(self, live: np.ndarray, price: np.ndarray, rate_per_bar: float) -> None:
        """Take one bar's borrow fee from the live portfolios that are short, at ``price``."""
        fee = np.where(live & (self.units < 0), -self.units * price * rate_per_bar, 0.0)
        self.cash -= fee
        self.borrow += fee
