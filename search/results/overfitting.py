"""How much can the best validation score be trusted? The deflated Sharpe ratio.

Bailey & López de Prado (2014), "The Deflated Sharpe Ratio: Correcting for Selection Bias,
Backtest Overfitting and Non-Normality". Trying N configurations and keeping the best inflates
the best Sharpe ratio; the DSR is the probability that the true Sharpe ratio of the selected
configuration is above zero, after deflating by what the best of N unskilled trials would score.
All Sharpe ratios here are per bar (not annualised).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

EULER_GAMMA = 0.5772156649015329
_NORMAL = NormalDist()


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """SR0: the expected maximum Sharpe ratio of ``n_trials`` unskilled trials whose Sharpe
    estimates have variance ``sharpe_variance`` (false-strategy theorem)."""
    if n_trials < 2 or sharpe_variance <= 0:
        return 0.0
    z1 = _NORMAL.inv_cdf(1.0 - 1.0 / n_trials)
    z2 = _NORMAL.inv_cdf(1.0 - 1.0 / (n_trials * math.e))
    return math.sqrt(sharpe_variance) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2)


def probabilistic_sharpe(sharpe: float, benchmark: float, n_returns: int, skew: float,
                         kurtosis: float) -> float:
    """P(true SR > benchmark) given an observed per-bar ``sharpe`` over ``n_returns`` returns
    with the given skewness and (non-excess) kurtosis."""
    if n_returns < 2:
        return float("nan")
    denominator = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe ** 2
    if denominator <= 0:
        return float("nan")
    return _NORMAL.cdf((sharpe - benchmark) * math.sqrt(n_returns - 1) / math.sqrt(denominator))


def deflated_sharpe(sharpe: float, n_returns: int, skew: float, kurtosis: float,
                    n_trials: int, sharpe_variance: float) -> float:
    """The deflated Sharpe ratio: PSR against the expected best of ``n_trials`` unskilled ones."""
    return probabilistic_sharpe(sharpe, expected_max_sharpe(n_trials, sharpe_variance),
                                n_returns, skew, kurtosis)


@dataclass(frozen=True)
class Verdict:
    dsr: float
    n_trials: int
    expected_max_sharpe: float
    text: str


def verdict(sharpe: float, n_returns: int, skew: float, kurtosis: float, n_trials: int,
            sharpe_variance: float) -> Verdict:
    """The DSR with a one-line reading a user can act on."""
    sr0 = expected_max_sharpe(n_trials, sharpe_variance)
    dsr = probabilistic_sharpe(sharpe, sr0, n_returns, skew, kurtosis)
    if math.isnan(dsr):
        text = "not enough data to judge the best trial"
    elif sharpe <= 0:
        text = (f"no edge: the best validation Sharpe is not positive after {n_trials} trials "
                f"(DSR {dsr:.2f}); no configuration beat holding cash on validation")
    elif dsr >= 0.95:
        text = (f"the best validation Sharpe holds up after {n_trials} trials (DSR {dsr:.2f}); "
                "confirm on the test split")
    elif dsr >= 0.5:
        text = (f"weak evidence: after {n_trials} trials the best validation Sharpe is only "
                f"somewhat above luck (DSR {dsr:.2f}); expect a lower test score")
    else:
        text = (f"likely selection luck: {n_trials} trials would reach this validation Sharpe "
                f"by chance (DSR {dsr:.2f}); do not trust it without a better test result")
    return Verdict(dsr, n_trials, sr0, text)
