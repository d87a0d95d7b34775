"""The deflated Sharpe ratio against a worked example computed by hand."""
from __future__ import annotations

import math
from statistics import NormalDist

import pytest

from search.results.overfitting import (EULER_GAMMA, deflated_sharpe, expected_max_sharpe, probabilistic_sharpe, verdict)


def test_worked_example_by_hand():
    # 100 trials, per-bar Sharpe estimates with variance 0.0025 (std 0.05); the selected trial
    # has per-bar Sharpe 0.2 over 500 bars, skew -0.5, kurtosis 5.
    n, variance, sharpe, bars, skew, kurt = 100, 0.0025, 0.2, 500, -0.5, 5.0
    z = NormalDist().inv_cdf
    sr0 = 0.05 * ((1 - EULER_GAMMA) * z(1 - 1 / 100) + EULER_GAMMA * z(1 - 1 / (100 * math.e)))
    # z(0.99) = 2.326348, z(1 - 1/271.83) = 2.680210, so SR0 = 0.05 * (0.422784*2.326348 +
    # 0.577216*2.680210) = 0.05 * (0.983546 + 1.547060) = 0.05 * 2.530606 = 0.126530
    assert sr0 == pytest.approx(0.126530, abs=2e-6)
    assert expected_max_sharpe(n, variance) == pytest.approx(sr0, rel=1e-12)
    stat = (sharpe - sr0) * math.sqrt(bars - 1) / math.sqrt(1 + 0.5 * 0.2 + 4 / 4 * 0.04)
    # (0.073470 * 22.338308) / sqrt(1.14) = 1.641205 / 1.067708 = 1.537127 -> Phi = 0.937868
    assert stat == pytest.approx(1.537127, abs=2e-5)
    assert deflated_sharpe(sharpe, bars, skew, kurt, n, variance) == pytest.approx(0.937868,
                                                                                   abs=2e-5)


def test_one_trial_is_not_deflated():
    assert expected_max_sharpe(1, 0.01) == 0.0
    assert deflated_sharpe(0.1, 200, 0.0, 3.0, 1, 0.01) == pytest.approx(
        probabilistic_sharpe(0.1, 0.0, 200, 0.0, 3.0))


def test_more_trials_deflate_more():
    values = [deflated_sharpe(0.1, 720, 0.0, 3.0, n, 0.004) for n in (2, 10, 100, 1000)]
    assert values == sorted(values, reverse=True)


def test_verdicts():
    assert "holds up" in verdict(0.3, 720, 0.0, 3.0, 5, 0.0001).text
    assert "selection luck" in verdict(0.01, 720, 0.0, 3.0, 500, 0.01).text
    assert "not enough data" in verdict(0.1, 1, 0.0, 3.0, 5, 0.01).text
    assert "no edge" in verdict(-0.02, 720, 0.0, 3.0, 5, 0.01).text
