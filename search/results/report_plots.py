"""The report's figures: Optuna's matplotlib plots, and the one chart Optuna lacks (equity).

Every function draws one PNG and closes its figure. Optuna's plots take an Optuna study (the
report passes an in-memory snapshot); the equity chart takes evaluations of a checkpoint.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import matplotlib

matplotlib.use("Agg")  # files only; never a window, and no display needed

import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

DPI = 100
# Which value of a trial to plot: None for a single-objective study (Optuna's default).
Target = Callable[[Any], float] | None
STYLE = "ggplot"  # Optuna's matplotlib plots use it; the report's own charts match them


def _save(axes: Any, path: Path, title: str, size: tuple[float, float],
          tight: bool = True) -> Path:
    first = np.ravel(axes)[0]
    figure = first.figure
    figure.set_size_inches(*size)
    if np.ndim(axes):
        figure.suptitle(title)
    else:
        first.set_title("", loc="left")  # Optuna's own title
        first.set_title(title)
    if tight:
        figure.tight_layout()
    figure.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(figure)
    return path


def _optuna_plot(name: str, *args: Any, **kwargs: Any) -> Any:
    from optuna.visualization import matplotlib as optuna_plots

    with warnings.catch_warnings():  # Optuna marks its matplotlib backend experimental
        warnings.simplefilter("ignore")
        return getattr(optuna_plots, name)(*args, **kwargs)


def history(study: Any, path: Path, target_name: str, target: Target = None) -> Path:
    """Objective of every completed trial and the best so far (Optuna)."""
    with plt.style.context(STYLE):
        axes = _optuna_plot("plot_optimization_history", study, target=target,
                            target_name=target_name)
        axes.xaxis.get_major_locator().set_params(integer=True)  # trial numbers
        return _save(axes, path, "Optimisation history", (9, 4.5))


def importances(study: Any, params: Sequence[str], path: Path, target_name: str,
                target: Target = None) -> list[str]:
    """Plot the importance of each varying parameter by Optuna's default evaluator (PED-ANOVA:
    deterministic, and needs no scikit-learn, unlike fANOVA); return them, most important
    first."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ranked = list(optuna.importance.get_param_importances(study, params=list(params),
                                                              target=target))
    with plt.style.context(STYLE):
        axes = _optuna_plot("plot_param_importances", study, params=list(params),
                            target=target, target_name=target_name)
        _save(axes, path, f"Hyperparameter importances for {target_name}",
              (9, 1.5 + 0.4 * len(params)))
    return ranked


def slices(study: Any, params: Sequence[str], path: Path, target_name: str,
           target: Target = None) -> Path:
    """The objective of every completed trial against each of ``params`` (Optuna)."""
    with plt.style.context(STYLE):
        axes = _optuna_plot("plot_slice", study, params=list(params), target=target,
                            target_name=target_name)
        for panel in np.ravel(axes):
            if panel.get_xscale() == "log":
                label_log_axis(panel.xaxis)
        # tight_layout would push Optuna's colour bar over the last panel
        return _save(axes, path, "Objective against the most important parameters",
                     (3.2 * len(params) + 1.5, 4), tight=False)


def label_log_axis(axis: Any) -> None:
    """Ticks a person can read on a log axis: 1, 2 and 5 of each decade, labelled (a range
    within one decade, such as a learning rate's 1e-5..8e-5, got no labelled tick at all), and
    no minor labels (on a narrow axis they overlap)."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.0e}"))
    axis.set_minor_formatter(NullFormatter())


def pareto(study: Any, path: Path, names: Sequence[str]) -> Path:
    """Every completed trial on the first two objectives, the Pareto front highlighted."""
    with plt.style.context(STYLE):
        axes = _optuna_plot("plot_pareto_front", study, target_names=list(names)[:2],
                            targets=lambda t: tuple(t.values[:2]))
        return _save(axes, path, "Pareto front", (7, 5))


def curves(trials: Sequence[Any], path: Path, ylabel: str) -> Path:
    """The values each trial reported per evaluation (Optuna's intermediate values).

    Optuna's ``plot_intermediate_values`` draws every trial of a study; this draws the given
    ones, labelled with their real trial numbers.
    """
    with plt.style.context(STYLE):
        figure, axes = plt.subplots()
        for trial in trials:
            steps = sorted(trial.intermediate_values)
            state = (f"{trial.values[0]:.4g}" if trial.values
                     else trial.state.name.lower())
            axes.plot(steps, [trial.intermediate_values[s] for s in steps], marker="o", ms=3,
                      ls="--" if trial.state.name == "RUNNING" else "-",
                      label=f"trial {trial.number} ({state})")
        axes.set_xlabel("evaluation on the validation split")
        axes.set_ylabel(ylabel)
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9)
        return _save(axes, path, "Validation score over evaluations", (9, 4.5))


def equity(runs: Sequence[dict[str, Any]], path: Path, title: str) -> Path:
    """Equity of a policy against buy-and-hold per split, trades marked (short periods shaded
    where the action set can short), drawdown below.

    Args:
        runs: one dict per split with ``label``, ``evaluation`` (a
            ``trainables.evaluation.Evaluation``) and ``closes`` (the split's close prices,
            aligned with the evaluation's equity).
        path: the PNG to write.
        title: the figure's title.
    """
    with plt.style.context(STYLE):
        figure, axes = plt.subplots(2, len(runs), squeeze=False, sharex="col",
                                    gridspec_kw={"height_ratios": [3, 1]})
        for column, run in enumerate(runs):
            _equity_panel(axes[0, column], axes[1, column], run)
        axes[0, 0].set_ylabel("portfolio value")
        axes[1, 0].set_ylabel("drawdown %")
        axes[1, 0].legend(loc="lower left", fontsize=8)
        return _save(axes, path, title, (6.5 * len(runs), 6))


def trade_marks(positions: Sequence[float]) -> tuple[np.ndarray, np.ndarray,
                                                       list[tuple[int, int]]]:
    """Where a run of signed exposures (held coming into each bar) trades, and when it is short.

    Returns the bars where the exposure rises (a buy: cash to long, short to cash, a bigger
    long) and where it falls (a sell), and the short periods as ``(first, last)`` bar pairs:
    the position is short from bar ``first - 1``'s close to bar ``last``'s.
    """
    held = np.asarray(positions, dtype=float)
    change = np.flatnonzero(np.diff(held)) + 1
    buys = change[held[change] > held[change - 1]]
    sells = change[held[change] < held[change - 1]]
    short = np.concatenate([[False], held < 0, [False]])
    edges = np.flatnonzero(np.diff(short.astype(np.int8)))
    return buys, sells, [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def _equity_panel(top: Any, bottom: Any, run: dict[str, Any]) -> None:
    import pandas as pd
    from matplotlib.patches import Patch

    result = run["evaluation"]
    n = min(len(result.equity), len(result.dates), len(run["closes"]))
    dates = pd.to_datetime(result.dates[:n])
    agent = np.asarray(result.equity[:n], dtype=float)
    closes = np.asarray(run["closes"][:n], dtype=float)
    hold = agent[0] * closes / closes[0]
    buys, sells, shorts = trade_marks(result.positions[:n])
    can_short = min(result.levels) < 0

    for first, last in shorts:
        top.axvspan(dates[max(first - 1, 0)], dates[last], color="tab:red", alpha=0.12, lw=0,
                    zorder=0)
    top.plot(dates, agent, color="tab:blue", lw=1.3, label="agent")
    top.plot(dates, hold, color="grey", lw=1, ls="--", label="buy-and-hold")
    top.scatter(dates[buys], agent[buys], marker="^", color="tab:green", s=28, zorder=3,
                label=f"buy ({len(buys)})")
    top.scatter(dates[sells], agent[sells], marker="v", color="tab:red", s=28, zorder=3,
                label=f"sell ({len(sells)})")
    handles, labels = top.get_legend_handles_labels()
    if can_short:
        short_bars = sum(last - first + 1 for first, last in shorts)
        handles.append(Patch(color="tab:red", alpha=0.12))
        labels.append(f"short ({short_bars} bar{'' if short_bars == 1 else 's'})")
    top.set_title(f"{run['label']}: agent {result.pnl_pct:+.1f}% vs buy-and-hold "
                  f"{result.buy_and_hold_pct:+.1f}%\nSharpe {result.sharpe:.2f}, max drawdown "
                  f"{result.max_drawdown:.1%}, {result.trades} trade"
                  f"{'' if result.trades == 1 else 's'}", fontsize=10)
    top.legend(handles, labels, loc="best", fontsize=8)
    top.grid(alpha=0.3)

    for values, colour, label in ((agent, "tab:blue", "agent"), (hold, "grey", "buy-and-hold")):
        drawdown = (values / np.maximum.accumulate(values) - 1.0) * 100.0
        bottom.plot(dates, drawdown, color=colour, lw=0.8, label=label)
        if label == "agent":
            bottom.fill_between(dates, drawdown, 0.0, color=colour, alpha=0.25)
    locator = mdates.AutoDateLocator()
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    bottom.grid(alpha=0.3)
