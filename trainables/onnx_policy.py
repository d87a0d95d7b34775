"""The exported policy as a torch module: raw bars in, TradeTune's features computed in-graph,
the trained network's greedy action out. Used only by ``export --onnx`` (it imports torch).

The features reproduce ``trainables.features._default_features`` (the ``ta`` package's indicators)
on a fixed window of the last ``lookback`` bars, oldest first:

- rolling quantities (returns, moving averages, standard deviations) are exact;
- exponential averages (RSI, MACD) start at the window's first bar instead of the first bar of
  the file, so they differ from data.py's by a term that decays as ``(1 - alpha)^history``,
  ``history`` being the bars before the oldest observation row. ``HISTORY`` bars make that
  term smaller than float32 resolution (see ``tests/search/test_onnx_export.py``);
- every linear filter (both EMAs of MACD, its signal line, the RSI averages) is a constant
  matrix, so the graph is plain MatMul/Gather/elementwise ops that every ONNX runtime runs;
- prices enter as ``(close - reference) / reference`` (the reference being the last bar or
  the row's own close) before averaging: the subtraction of two float32 prices is exact, so
  float32 arithmetic keeps full precision at any price level; the indicators are
  scale-invariant, so this changes nothing mathematically.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from trainables.evaluation import greedy_actions

# Order and names of trainables.features._default_features' columns.
DEFAULT_FEATURES = ("log_return_1", "log_return_6", "log_return_24", "rsi_14", "close_sma_20",
                    "close_sma_50", "volatility_24", "macd_diff", "bollinger_b_20", "range",
                    "volume_z_24")
BAR_COLUMNS = ("open", "high", "low", "close", "volume")
FEATURE_CLIP = 10.0
# Bars before the oldest observation row: (13/14)^256 ~ 6e-9, below float32 resolution for
# RSI's average (the slowest EMA, alpha 1/14); the 50-bar SMA needs only 49.
HISTORY = 256
# Largest |graph - data.py| over every feature and observation row, on float32 bars, measured
# with tests/search/test_onnx_export.py (data.py computes on the float64 CSV: the rest of the
# difference is the float32 rounding of the input prices); the tolerance the tests enforce.
MEASURED_DIFFERENCE = {"Coinbase BTC/USD 1h": 1.7e-5, "synthetic": 3.2e-6}
FEATURE_TOLERANCE = 5e-5
RSI_WINDOW = 14
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9


def lookback_for(window_size: int) -> int:
    """Bars the graph reads for an observation of ``window_size`` feature rows."""
    return int(window_size) + HISTORY


def _ema_matrix(alpha: float, n: int) -> np.ndarray:
    """``E`` with ``E @ x`` = pandas ``x.ewm(alpha=alpha, adjust=False).mean()`` over ``n``
    values: ``y0 = x0``, ``yt = (1 - alpha) y(t-1) + alpha xt``. Rows sum to 1."""
    t = np.arange(n)
    lag = t[:, None] - t[None, :]
    decay = np.where(lag >= 0, (1.0 - alpha) ** np.clip(lag, 0, None), 0.0)
    weights = alpha * decay
    weights[:, 0] = decay[:, 0]  # the first value carries the weight of everything before it
    return weights


class BarFeatures(torch.nn.Module):
    """``bars`` (batch, lookback, 5) float32 -> features (batch, window, n_features) float32,
    the last ``window`` rows of data.py's features for those bars, in ``features`` order."""

    def __init__(self, features: list[str] | tuple[str, ...], window: int,
                 lookback: int | None = None) -> None:
        super().__init__()
        unknown = [f for f in features if f not in DEFAULT_FEATURES]
        if unknown:
            raise ValueError(f"cannot compute {unknown} from bars; known: {DEFAULT_FEATURES}")
        self.features = tuple(features)
        self.window = int(window)
        self.lookback = lookback_for(window) if lookback is None else int(lookback)
        if self.lookback < self.window + 49:
            raise ValueError(f"lookback {self.lookback} is too short for {self.window} rows "
                             "(the 50-bar average needs 49 bars before the oldest row)")
        n, rows = self.lookback, np.arange(self.lookback - self.window, self.lookback)

        def index(width: int, shift: int = 0) -> torch.Tensor:
            return torch.as_tensor(rows[:, None] + np.arange(1 - width, 1)[None, :] - shift)

        self.register_buffer("rows", torch.as_tensor(rows), persistent=False)
        for k in (1, 6, 24):
            self.register_buffer(f"lag{k}", torch.as_tensor(rows - k), persistent=False)
        self.register_buffer("win20", index(20), persistent=False)
        self.register_buffer("win50", index(50), persistent=False)
        self.register_buffer("win24", index(24), persistent=False)
        # Log return j is between bars j and j + 1, so bar r's window of returns is r-24..r-1.
        self.register_buffer("ret24", index(24, shift=1), persistent=False)
        # RSI: EMAs of the up and down moves (move j is bar j+1 minus bar j), with the move into
        # the window's first bar taken as 0, as ta takes the first bar of a series.
        rsi = _ema_matrix(1.0 / RSI_WINDOW, n)[rows][:, 1:]
        self.register_buffer("rsi", torch.as_tensor(rsi.T, dtype=torch.float32),
                             persistent=False)
        # MACD diff = (I - signal EMA)(fast EMA - slow EMA) applied to the closes.
        macd = _ema_matrix(2 / (MACD_FAST + 1), n) - _ema_matrix(2 / (MACD_SLOW + 1), n)
        diff = (np.eye(n) - _ema_matrix(2 / (MACD_SIGNAL + 1), n)) @ macd
        self.register_buffer("macd", torch.as_tensor(diff[rows].T, dtype=torch.float32),
                             persistent=False)

    def forward(self, bars: torch.Tensor) -> torch.Tensor:
        high, low, close, volume = bars[:, :, 1], bars[:, :, 2], bars[:, :, 3], bars[:, :, 4]
        now = close[:, self.rows]
        columns = {}
        for k in (1, 6, 24):
            if f"log_return_{k}" in self.features:
                columns[f"log_return_{k}"] = torch.log(now / close[:, getattr(self, f"lag{k}")])
        if "rsi_14" in self.features:
            # Moves relative to the last close: exact differences of the float32 inputs.
            moves = (close[:, 1:] - close[:, :-1]) / close[:, -1:]
            up = torch.relu(moves) @ self.rsi
            down = torch.relu(-moves) @ self.rsi
            rsi = (up - down) / (2 * (up + down))  # = rsi / 100 - 0.5
            columns["rsi_14"] = torch.where(down == 0, torch.full_like(rsi, 0.5), rsi)
        for width in (20, 50):
            if f"close_sma_{width}" in self.features:
                mean = self._relative(close, getattr(self, f"win{width}"), now).mean(dim=-1)
                columns[f"close_sma_{width}"] = -mean / (1 + mean)  # close / sma - 1
        if "volatility_24" in self.features:
            returns = torch.log(close[:, 1:] / close[:, :-1])[:, self.ret24]
            columns["volatility_24"] = _std(returns, ddof=1)
        if "macd_diff" in self.features:
            centred = (close - close[:, -1:]) / close[:, -1:]
            columns["macd_diff"] = (centred @ self.macd) / (1 + centred[:, self.rows])
        if "bollinger_b_20" in self.features:
            relative = self._relative(close, self.win20, now)
            spread = _std(relative, ddof=0)
            b = -relative.mean(dim=-1) / (4 * spread)  # percent_b - 0.5
            columns["bollinger_b_20"] = torch.where(spread == 0, torch.zeros_like(b), b)
        if "range" in self.features:
            columns["range"] = (high[:, self.rows] - low[:, self.rows]) / now
        if "volume_z_24" in self.features:
            # z-scores are shift-invariant: logs relative to the row's own volume (one rounding,
            # and a flat window stays exactly 0).
            ones = 1 + volume[:, self.win24]
            centred = torch.log(ones / ones[:, :, -1:])
            spread = _std(centred, ddof=1)
            z = -centred.mean(dim=-1) / spread
            columns["volume_z_24"] = torch.where(spread == 0, torch.zeros_like(z), z)
        stacked = torch.stack([columns[name] for name in self.features], dim=-1)
        return torch.clamp(stacked, -FEATURE_CLIP, FEATURE_CLIP)

    @staticmethod
    def _relative(close: torch.Tensor, index: torch.Tensor, now: torch.Tensor) -> torch.Tensor:
        """Each row's window of closes over the row's own close, minus 1 (0 for that bar); the
        subtraction of two float32 closes is exact, so only the division rounds."""
        return (close[:, index] - now[:, :, None]) / now[:, :, None]


def _std(values: torch.Tensor, ddof: int) -> torch.Tensor:
    centred = values - values.mean(dim=-1, keepdim=True)
    return torch.sqrt((centred * centred).sum(dim=-1) / (values.shape[-1] - ddof))


class ObsPolicy(torch.nn.Module):
    """``obs`` (batch, obs_dim) -> greedy ``action`` (batch,) int64, an index into the action
    set's exposure levels."""

    def __init__(self, module: Any) -> None:
        super().__init__()
        self.module = module

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return greedy_actions(self.module, obs)


class BarPolicy(torch.nn.Module):
    """``bars`` (batch, lookback, 5) and ``position`` (batch, 1), the signed exposure held (one
    of the action set's levels), -> greedy ``action`` (batch,), an index into those levels: the
    env's observation (the last ``window`` feature rows, flattened, then the position) built
    in-graph and fed to the trained network."""

    def __init__(self, module: Any, features: list[str] | tuple[str, ...], window: int) -> None:
        super().__init__()
        self.features = BarFeatures(features, window)
        self.module = module

    def forward(self, bars: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        obs = torch.cat([self.features(bars).flatten(1), position], dim=1)
        return greedy_actions(self.module, obs)


# -- ONNX export -----------------------------------------------------------------------------

OPSET = 17


def _nanmean(g: Any, x: Any, dim: Any, keepdim: Any, dtype: Any) -> Any:
    """ONNX for ``torch.nanmean`` (RLlib's dueling DQN head centres its advantages with it;
    the TorchScript exporter has no translation): the sum of the non-NaN values over their
    count."""
    from torch.onnx import symbolic_helper

    dims = symbolic_helper._get_const(dim, "is", "dim")
    keep = int(symbolic_helper._get_const(keepdim, "i", "keepdim"))
    isnan = g.op("IsNaN", x)
    zero = g.op("CastLike", g.op("Constant", value_t=torch.tensor(0.0)), x)
    axes = g.op("Constant", value_t=torch.tensor(list(dims), dtype=torch.int64))
    total = g.op("ReduceSum", g.op("Where", isnan, zero, x), axes, keepdims_i=keep)
    count = g.op("ReduceSum", g.op("CastLike", g.op("Not", isnan), x), axes, keepdims_i=keep)
    return g.op("Div", total, count)


def export_onnx(model: torch.nn.Module, example: tuple[torch.Tensor, ...],
                input_names: list[str], path: str) -> None:
    """Write ``model`` as an ONNX graph at opset ``OPSET`` with a dynamic batch axis on every
    input and on the ``action`` output (TorchScript exporter, which needs no extra package)."""
    torch.onnx.register_custom_op_symbolic("aten::nanmean", _nanmean, OPSET)
    axes = {name: {0: "batch"} for name in [*input_names, "action"]}
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter announces its deprecation; its successor needs onnxscript.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model.eval(), example, path, input_names=input_names,
                          output_names=["action"], dynamic_axes=axes, opset_version=OPSET,
                          dynamo=False)
