"""The accounting of exposure levels, costs and borrowing, against P&L worked out by hand.

Each expected figure is written out as the arithmetic a person does on paper (the rules are in
``trainables/accounting.py``'s docstring), never by calling the module. The last tests run the
same rules through the env, and check that levels (0, 1) reproduce TensorTrade's long-or-cash
net worth.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from trainables.accounting import Book, slippage_rates, volatility
from trainables.env import TradingEnv

CASH = 10_000.0
SYN = {"synthetic": {"n_bars": 1500, "seed": 7}}


class Script:
    """One portfolio stepped bar by bar: ``go(level)`` trades at the current close, then the
    bar ends at the next close (borrow charged there)."""

    def __init__(self, prices, commission=0.0, slippage=0.0, borrow_per_bar=0.0):
        self.prices, self.bar = [float(p) for p in prices], 0
        self.commission, self.slippage, self.borrow = commission, slippage, borrow_per_bar
        self.book = Book(1)
        self.book.start(slice(None), CASH)

    def go(self, level: float) -> float:
        book, price = self.book, np.array([self.prices[self.bar]])
        book.rebalance(book.level != level, np.array([float(level)]), price, self.commission,
                       np.array([self.slippage]))
        self.bar += 1
        book.charge_borrow(np.ones(1, dtype=bool), np.array([self.prices[self.bar]]),
                           self.borrow)
        return self.worth()

    def worth(self) -> float:
        return float(self.book.net_worth(np.array([self.prices[self.bar]]))[0])

    def paid(self) -> tuple[float, float, float]:
        return (float(self.book.commission[0]), float(self.book.slippage[0]),
                float(self.book.borrow[0]))


def test_enter_long_then_flip_to_short_pays_commission_on_both_trades():
    run = Script([100, 110, 99], commission=0.001)
    # Bar 0 at 100: all 10,000 cash buys; 0.1% commission comes out of what arrives.
    units = 10_000 * 0.999 / 100  # 99.9
    assert run.go(1) == pytest.approx(units * 110, rel=1e-12)  # 10,989 at 110
    assert run.book.cash[0] == pytest.approx(0.0, abs=1e-9)
    # Bar 1 at 110: worth 10,989; a short of the whole net worth after costs: the sale must
    # cover the long and open the short, N = (10,989 + 10,989) / (1 + 0.001).
    sold = (10_989 + 10_989) / 1.001
    cash = sold * 0.999
    short_units = units - sold / 110  # negative
    worth_at_99 = cash + short_units * 99
    assert run.go(-1) == pytest.approx(worth_at_99, rel=1e-12)
    assert run.book.units[0] == pytest.approx(short_units, rel=1e-12)
    # Right after the flip the exposure is exactly -1: short notional = net worth after fees.
    assert -short_units * 110 == pytest.approx(10_989 - 0.001 * sold, rel=1e-12)
    assert run.paid() == pytest.approx((0.001 * 10_000 + 0.001 * sold, 0.0, 0.0), rel=1e-12)
    # The short gained as the price fell 10%: about 10% of 10,967.
    assert worth_at_99 == pytest.approx(10_967.04 + 1_096.70, abs=0.01)


def test_partial_sizes_rebalance_only_on_a_change_of_level():
    run = Script([100, 120, 120, 90], commission=0.01)
    # Half in at 100: the buy N solves 0.5 * (10,000 - 0.01 N) = 0.99 N  ->  N = 5,000 / 0.995.
    bought = 5_000 / 0.995
    units, cash = bought * 0.99 / 100, 10_000 - bought
    assert run.go(0.5) == pytest.approx(cash + units * 120, rel=1e-12)
    assert units * 100 == pytest.approx(0.5 * (cash + units * 100), rel=1e-12)
    # Still 0.5 at 120: no trade although the exposure drifted up to 0.55.
    worth = cash + units * 120
    assert run.go(0.5) == pytest.approx(worth, rel=1e-12)
    assert run.paid()[0] == pytest.approx(0.01 * bought, rel=1e-12)
    # All in at 120: buy the rest, gap = 1.0 * worth - units * 120; N = gap / (1 - 0.01 + 0.01).
    more = worth - units * 120
    units, cash = units + more * 0.99 / 120, cash - more
    assert cash == pytest.approx(0.0, abs=1e-9)
    assert run.go(1) == pytest.approx(units * 90, rel=1e-12)
    assert run.paid()[0] == pytest.approx(0.01 * (bought + more), rel=1e-12)
    assert run.book.level[0] == 1.0


def test_a_quarter_long_sells_down_to_its_level_after_costs():
    run = Script([100, 100, 80], commission=0.002, slippage=0.003)
    run.go(1)
    units = 10_000 * 0.995 / 100  # 99.5 after 0.5% costs
    assert run.book.units[0] == pytest.approx(units, rel=1e-12)
    # At 100 the worth is 9,950; to 0.25 the sale N solves units*100 - N = 0.25 (9,950 - 0.005 N)
    sold = (9_950 - 0.25 * 9_950) / (1 - 0.25 * 0.005)
    units_left, cash = units - sold / 100, sold * 0.995
    assert run.go(0.25) == pytest.approx(cash + units_left * 80, rel=1e-12)
    assert units_left * 100 == pytest.approx(0.25 * (cash + units_left * 100), rel=1e-12)
    commission, slippage, borrow = run.paid()
    assert commission == pytest.approx(0.002 * (10_000 + sold), rel=1e-12)
    assert slippage == pytest.approx(0.003 * (10_000 + sold), rel=1e-12)
    assert borrow == 0.0


def test_borrow_fee_accrues_at_each_close_a_short_is_held_through():
    per_bar = 0.05 / 8_760  # 5% a year, hourly bars
    run = Script([100, 105, 95, 100, 100], borrow_per_bar=per_bar)
    run.go(-1)  # short 100 units at 100: cash 20,000
    run.go(-1)
    run.go(-1)
    fees = 100 * 105 * per_bar + 100 * 95 * per_bar + 100 * 100 * per_bar
    assert run.worth() == pytest.approx(20_000 - fees - 100 * 100, rel=1e-12)
    assert run.paid()[2] == pytest.approx(fees, rel=1e-12)
    # Covering to cash at 100 costs nothing more (no commission) and stops the fee.
    assert run.go(0) == pytest.approx(10_000 - fees, rel=1e-12)
    assert run.book.units[0] == 0.0 and run.paid()[2] == pytest.approx(fees, rel=1e-12)


def test_cover_a_short_with_commission_buys_back_every_unit():
    run = Script([100, 50, 50], commission=0.01)
    run.go(-1)
    sold = 10_000 / 1.01  # short notional after costs is the whole worth
    units, cash = -sold / 100, 10_000 + sold * 0.99
    assert run.worth() == pytest.approx(cash + units * 50, rel=1e-12)
    # To cash at 50: buy N with N * 0.99 / 50 = -units  ->  N = -units * 50 / 0.99.
    bought = -units * 50 / 0.99
    assert run.go(0) == pytest.approx(cash - bought, rel=1e-12)
    assert run.book.units[0] == 0.0
    assert run.paid()[0] == pytest.approx(0.01 * (sold + bought), rel=1e-12)


def test_volatility_slippage_is_a_multiple_of_the_recent_log_return_std():
    closes = np.array([100.0, 110.0, 99.0, 99.0])
    up, down = math.log(1.1), math.log(0.9)
    # Window 2: bar 0 has no return, bar 1 one return (std 0), bar 2 two, bar 3 the last two.
    want = [0.0, 0.0, abs(up - down) / 2, abs(down - 0.0) / 2]
    np.testing.assert_allclose(volatility(closes, 2), want, rtol=1e-12, atol=1e-15)
    rates = slippage_rates(closes, {"bps": 5, "vol_mult": 0.5, "vol_window": 2})
    np.testing.assert_allclose(rates, [0.0005 + 0.5 * w for w in want], rtol=1e-12)
    assert slippage_rates(closes, {"bps": 2_000, "vol_mult": 0, "vol_window": 2}).max() == 0.1


def test_the_env_follows_the_same_rules_with_the_markets_bars_per_year():
    env = TradingEnv({"data": SYN, "actions": "long_short", "commission": 0.001,
                      "borrow_rate": 0.1, "slippage": {"bps": 2}, "max_allowed_loss": None})
    env.reset(seed=0)
    first = env.bar
    p = env.market.bars["close"].to_numpy()[first:first + 4]
    per_bar, k = 0.1 / env.market.periods_per_year, 0.001 + 0.0002
    for action in (0, 0, 1):  # short, hold the short, cover to cash
        env.step(action)
    # Bar 0: short N = 10,000 / (1 + k); borrow at the closes of bars 1 and 2.
    sold = CASH / (1 + k)
    units, cash = -sold / p[0], CASH + sold * (1 - k)
    cash -= -units * p[1] * per_bar + -units * p[2] * per_bar
    # Bar 2: cover every unit, N = -units * p2 / (1 - k).
    bought = -units * p[2] / (1 - k)
    assert env.net_worth == pytest.approx(cash - bought, rel=1e-12)
    assert env.paid["commission"] == pytest.approx(0.001 * (sold + bought), rel=1e-12)
    assert env.paid["slippage"] == pytest.approx(0.0002 * (sold + bought), rel=1e-9)
    assert env.paid["borrow"] == pytest.approx(-units * (p[1] + p[2]) * per_bar, rel=1e-12)
    assert env.position == 0.0


@pytest.mark.parametrize("data", [SYN, "real"])
def test_levels_0_1_reproduce_tensortrades_long_or_cash_net_worth(data):
    """TensorTrade fills at the close rounded to cents and keeps balances in cents and
    satoshis; the book does not round. Measured: at most 1.6e-5 of net worth apart after about
    300 trades on the real data, 7e-6 after 100 on the synthetic; the bound is 5e-5. The
    commission paid agrees to a cent per trade."""
    from tests.trainables.test_vector_env import real_data

    data = real_data() if data == "real" else data
    for seed in range(3):
        env = TradingEnv({"data": data, "commission": 0.003, "max_allowed_loss": None})
        assert env.uses_tensortrade
        env.reset(seed=seed)
        book = Book(1)
        book.start(slice(None), CASH)
        rng = np.random.default_rng(seed)
        for _ in range(1_500):
            action = int(rng.integers(0, 2)) if rng.random() < 0.2 else int(env.position)
            price = env._closes[env.bar:env.bar + 1]
            book.rebalance(book.level != action, np.array([float(action)]), price, 0.003,
                           np.zeros(1))
            _, _, terminated, truncated, info = env.step(action)
            worth = float(book.net_worth(env._closes[env.bar:env.bar + 1])[0])
            assert worth == pytest.approx(info["net_worth"], rel=5e-5)
            # Each of TensorTrade's fees is rounded to a cent (or a satoshi's worth).
            assert book.commission[0] == pytest.approx(env.paid["commission"],
                                                       abs=0.01 * info["trades"] + 1e-9)
            if terminated or truncated:
                break
        assert info["trades"] > 50
