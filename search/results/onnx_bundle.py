"""The deployable bundle of an exported trial (``export --onnx``): ONNX policies, their
contract as JSON, and a model card.

- ``policy.onnx``: raw bars in (``bars`` float32 (batch, lookback, 5) open, high, low, close,
  volume, oldest first; ``position`` float32 (batch, 1), the signed exposure held), greedy
  ``action`` int64 (batch,) out: an index into the study's exposure levels (``actions``).
  TradeTune's features are computed inside the graph (trainables/onnx_policy.py), so any ONNX
  runtime can run it without TradeTune.
- ``policy_obs.onnx``: the same network on TradeTune's observation vector (``obs``), for users
  who compute the features themselves.
- ``policy.json``: everything a caller must know to feed the graphs (names, shapes, column
  order, lookback, the actions' exposures and meanings, bar interval) and what the policy was
  trained for (action set, commission, slippage, borrow rate).
- ``MODEL_CARD.md``: what a reviewer needs before trusting the policy.

Torch, pandas and the data are loaded only here, only when the bundle is asked for: a plain
``export`` stays a query.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from search.results import degenerate
from search.formats import describe_market, describe_test_looks, number
from search.study.schema import ATTR_DATA, ATTR_VERSIONS
from search.study.trials import optuna_study_id
from search.versions import versions_of

ONNX_FILE = "policy.onnx"
OBS_FILE = "policy_obs.onnx"
SPEC_FILE = "policy.json"
CARD_FILE = "MODEL_CARD.md"
# trainables/bar_files.py, copied: the reader training used, for examples/run_onnx.py anywhere.
READER_FILE = "bar_files.py"
BUNDLE_FILES = (ONNX_FILE, OBS_FILE, SPEC_FILE, CARD_FILE, READER_FILE)
# The long-only actions' meanings, as policy.json has always spelled them.
LONG_ONLY_MEANINGS = {"0": "hold cash: sell everything if holding the asset, else do nothing",
                      "1": "hold the asset: buy with all the cash if in cash, else do nothing"}
EXPORT_PACKAGES = ("torch", "onnx", "onnxruntime", "ray", "numpy")
# Metrics the card adds for action sets and frictions beyond long-or-cash with commission.
FRICTION_METRICS = ("time_long", "time_short", "commission_paid", "slippage_paid", "borrow_paid")


def write_bundle(out: Path, url: str, study: Any, trial: Any) -> list[str]:
    """Write the bundle of ``trial`` into ``out``, next to the exported ``checkpoint`` folder;
    return the names of the files written.

    Everything that can fail on bad input (the study's data file gone or changed) is read
    before the first file is written.
    """
    import torch

    from search.results.data_summary import describe
    from search.results.evaluate import evaluate_trial
    from search.results.summaries import judge_best, overfitting_check
    from search.study import audit, studies
    from search.study.provenance import check_data_unchanged, space_of
    from search.study.schema import ATTR_METRICS
    from search.study.trials import open_existing
    from trainables import onnx_policy
    from trainables.market import prepare_market
    from trainables.rllib_trainable import load_module
    from trainables.settings import env_settings, trial_env

    config = studies.stored_config(study)
    settings = space_of(study).replay(trial.params)
    env = env_settings(trial_env(config, settings))
    check_data_unchanged(study)  # the bundle must describe the data the policy trained on
    market = prepare_market(config["data"])
    features = list(market.features.columns)
    window = int(env["window_size"])
    module = load_module(out / "checkpoint")
    storage = open_existing(url)
    overfitting = overfitting_check(storage, optuna_study_id(study),
                                    trial.user_attrs.get(ATTR_METRICS, {}))
    overfitting["edge"] = judge_best(storage, optuna_study_id(study),
                                     trial.user_attrs.get(ATTR_METRICS, {}))["text"]

    written = [OBS_FILE, SPEC_FILE, CARD_FILE]
    obs_dim = window * len(features) + 1
    onnx_policy.export_onnx(onnx_policy.ObsPolicy(module), (torch.zeros(1, obs_dim),),
                            ["obs"], str(out / OBS_FILE))
    unsupported = [f for f in features if f not in onnx_policy.DEFAULT_FEATURES]
    lookback = onnx_policy.lookback_for(window)
    if not unsupported:
        bars = torch.ones(1, lookback, len(onnx_policy.BAR_COLUMNS))
        onnx_policy.export_onnx(onnx_policy.BarPolicy(module, features, window),
                                (bars, torch.zeros(1, 1)), ["bars", "position"],
                                str(out / ONNX_FILE))
        written.insert(0, ONNX_FILE)
        from trainables import bar_files
        (out / READER_FILE).write_text(Path(bar_files.__file__).read_text())
        written.append(READER_FILE)
    info = describe(market)
    spec = _spec(config, study, trial, env, info, features, window,
                 None if unsupported else lookback, unsupported)
    (out / SPEC_FILE).write_text(json.dumps(spec, indent=2, default=str))
    # A reviewer needs the test score; scoring it is a look, recorded like any other.
    test = evaluate_trial(url, study.study_name, trial.number, "test",
                                command=f"export --onnx --trial {trial.number}")
    looks = describe_test_looks(audit.summary(storage, optuna_study_id(study)))
    (out / CARD_FILE).write_text(_card(config, study, trial, settings, spec, info, overfitting,
                                       test, looks))
    return written


def _spec(config: dict[str, Any], study: Any, trial: Any, env: dict[str, Any],
          info: dict[str, Any], features: list[str], window: int, lookback: int | None,
          unsupported: list[str]) -> dict[str, Any]:
    from trainables import onnx_policy
    from trainables.actions import action_levels, action_meanings, is_long_only

    levels = action_levels(env["actions"])
    meanings = action_meanings(levels)
    spec: dict[str, Any] = {
        "format": "tradetune-policy/1",
        "opset": onnx_policy.OPSET,
        "algorithm": config["algorithm"],
        "study": study.study_name,
        "trial": trial.number,
        "validation_value": trial.values[0] if trial.values else None,
        "action_meanings": (LONG_ONLY_MEANINGS if is_long_only(levels) else
                            {str(i): f"{m}: hold {level:g} x net worth in the asset"
                             for i, (level, m) in enumerate(zip(levels, meanings))}),
        "actions": [{"index": i, "exposure": level, "meaning": m}
                    for i, (level, m) in enumerate(zip(levels, meanings))],
        "bar_interval": info["interval"],
        "trained_for": {"commission": float(env["commission"]), "reward": env["reward"],
                        "initial_cash": float(env["initial_cash"]),
                        "long_only": is_long_only(levels), "assets": 1,
                        "actions": env["actions"], "slippage": env["slippage"],
                        "borrow_rate": float(env["borrow_rate"])},
        "window_size": window,
        "features": features,
        "feature_clip": onnx_policy.FEATURE_CLIP,
    }
    if lookback is None:
        spec[ONNX_FILE] = (f"not written: the features {unsupported} come from the CSV, not "
                           f"from bars; use {OBS_FILE}")
    else:
        spec[ONNX_FILE] = {
            "inputs": [
                {"name": "bars", "dtype": "float32",
                 "shape": ["batch", lookback, len(onnx_policy.BAR_COLUMNS)],
                 "columns": list(onnx_policy.BAR_COLUMNS),
                 "order": "oldest first; the last row is the bar just closed, the one to act on",
                 "volume": "the volume column the training CSV used (the quote-currency one "
                           "where it has several); any positive value if the policy has no "
                           "volume feature"},
                {"name": "position", "dtype": "float32", "shape": ["batch", 1],
                 "meaning": "the position held coming into that bar, as the signed exposure "
                            "of `actions` (0 cash, 1 all in the asset, -1 all short; the "
                            "previous action's exposure, as filled)"}],
            "outputs": [{"name": "action", "dtype": "int64", "shape": ["batch"]}],
            "lookback": lookback,
            "feature_tolerance": {
                "max_abs_difference": onnx_policy.FEATURE_TOLERANCE,
                "measured": onnx_policy.MEASURED_DIFFERENCE,
                "against": "trainables/data.py's features on the full history (float64), "
                           "every row of the observation window"},
        }
    spec[OBS_FILE] = {
        "inputs": [{"name": "obs", "dtype": "float32",
                    "shape": ["batch", window * len(features) + 1],
                    "layout": f"the last {window} feature rows (oldest first), each in "
                              "`features` order, flattened row by row, then the position"}],
        "outputs": [{"name": "action", "dtype": "int64", "shape": ["batch"]}],
    }
    spec["data"] = {"source": info["source"], "reading": {  # data.sep etc., for bar_files.py
                        key: config["data"].get(key) for key in ("date_column", "sep", "decimal")},
                    "fingerprint": study.user_attrs.get(ATTR_DATA),
                    "first": info["first"], "last": info["last"],
                    "splits": {k: v for k, v in info["splits"].items()}}
    spec["versions"] = {"trained_with": study.user_attrs.get(ATTR_VERSIONS, {}),
                        "exported_with": versions_of(EXPORT_PACKAGES)}
    spec["exported_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return spec


def _promotion(promotion: dict[str, Any] | None) -> str:
    from search.results.summaries import judged_promotion

    if promotion:
        promotion = judged_promotion(promotion)
    if not promotion:
        return ("not run (`tradetune promote --study NAME --trial N --seeds K` retrains on "
                "seeds the study never used)")
    return (f"{promotion.get('verdict')} (mean {number(promotion.get('mean'), 'n/a')} over seeds "
            f"{promotion.get('seeds')}; rule: {promotion.get('rule')})")


def _card(config: dict[str, Any], study: Any, trial: Any, settings: dict[str, Any],
          spec: dict[str, Any], info: dict[str, Any], overfitting: dict[str, Any],
          test: dict[str, Any], test_looks: str) -> str:
    """MODEL_CARD.md: provenance, scores, the overfitting verdict, data and limitations."""
    from search.results.summaries import market_of
    from search.study.schema import ATTR_METRICS, ATTR_PROMOTION, ATTR_STOP
    from trainables.settings import on_tensortrade

    metrics = trial.user_attrs.get(ATTR_METRICS, {})
    kind_on_val = degenerate.label(metrics)
    trained = spec["trained_for"]
    bars = spec[ONNX_FILE]
    long_only = trained["long_only"]
    plain = on_tensortrade(trained)  # long-or-cash with commission only: the card as always
    exposures = ", ".join(f"{a['index']} = {a['meaning']}" for a in spec["actions"])
    shorts = min(a["exposure"] for a in spec["actions"]) < 0
    kind = "long-or-cash" if long_only else "long-short" if shorts else "position-sized long"
    lines = [
        f"# Model card: {study.study_name}, trial {trial.number} ({config['algorithm'].upper()})",
        "",
        f"Exported {spec['exported_at']}. A greedy {kind} policy for one asset on "
        f"{info['interval']} bars, selected by a TradeTune sweep on its validation score "
        f"({number(spec['validation_value'], 'n/a')}, objective "
        f"{config['training'].get('objectives') or config['training']['objective']}).",
        *([ "", f"**Degenerate policy on validation: {kind_on_val}.** Its score is the market's "
            "or cash's, not a strategy's: do not read it as an edge.", ""]
          if kind_on_val else [""]),
        "## Files",
        "",
        (f"- `{ONNX_FILE}`: raw bars `(batch, {bars['lookback']}, 5)` + position -> action"
         if isinstance(bars, dict) else f"- `{ONNX_FILE}`: {bars}"),
        f"- `{OBS_FILE}`: TradeTune observation -> action; `{SPEC_FILE}`: the inputs' contract",
        "- `checkpoint/`: the RLlib checkpoint; `rllib_config.json`, `sweep_config.json`, "
        "`trial.json`",
        "",
        "## Trading terms (fixed for the study, never searched)",
        "",
        f"{describe_market(market_of(config))}. Actions: {exposures}; the `position` input is "
        "the exposure of the action last taken.",
        "",
        "## Validation and test metrics against buy-and-hold",
        "",
        "| metric | validation (selected the trial) | test (nothing in the sweep saw it) |",
        "|---|---|---|",
    ]
    for key in ("sharpe", "pnl_pct", "buy_and_hold_pct", "max_drawdown", "trades",
                "time_in_market", *(() if plain else FRICTION_METRICS), "bars"):
        lines.append(f"| {key} | {number(metrics.get(key), 'n/a')} | "
                     f"{number(test.get(key), 'n/a')} |")
    if metrics.get("run_scores"):
        lines.append(f"| score per fold / seed | {metrics.get('fold_scores')} / "
                     f"{metrics.get('seed_scores')} "
                     f"(std {number(metrics.get('score_std'), 'n/a')}) |")
    beats = (metrics.get("pnl_pct") is not None and metrics.get("buy_and_hold_pct") is not None
             and metrics["pnl_pct"] > metrics["buy_and_hold_pct"])
    lines += [
        "",
        f"On its validation period the policy {'beat' if beats else 'did not beat'} "
        f"buy-and-hold. Trial stopped by: {trial.user_attrs.get(ATTR_STOP, 'n/a')}.",
        "",
        f"On the test split it {'beat' if test.get('beats_buy_and_hold') else 'did not beat'} "
        "buy-and-hold.",
        "",
        f"- Edge over buy-and-hold (deflated Sharpe ratio of the active returns over every "
        f"configuration tried, and the PBO of the selection): {overfitting.get('edge')}",
        f"- Overfitting check against cash (deflated Sharpe ratio over the study's trials): "
        f"{overfitting.get('verdict')}",
        f"- Promotion on fresh seeds: {_promotion(trial.user_attrs.get(ATTR_PROMOTION))}",
        f"- The study's test split: {test_looks}, this export's look included (each look is "
        "a selection step: many looks make the test score another validation score).",
        "",
        "## Data",
        "",
        f"Source `{info['source']}` (fingerprint {spec['data']['fingerprint']}), "
        f"{info['rows']} bars after the feature warm-up, {info['first']} .. {info['last']}, "
        f"every {info['interval']}.",
        "",
    ]
    for name, split in info["splits"].items():
        lines.append(f"- {name}: {split['rows']} bars, {split['first']} .. {split['last']}")
    lines += [
        "",
        "## What the policy cannot do",
        "",
        ("- It is long-only: it holds either cash or the asset, all in; no shorts, no leverage, "
         "no position sizing." if long_only else
         "- It holds one of the exposure levels above, as a fraction of net worth, rebalanced "
         "only when its action changes; no leverage above 1, and no margin calls or short "
         "squeezes were simulated (a short that loses everything ends the run)."),
        "- It trades one asset, on the bar interval it was trained on "
        f"({info['interval']}); other intervals change every feature's meaning.",
        (f"- It was trained for a commission of {trained['commission']:g} per trade and the "
         f"`{trained['reward']}` reward; different costs change which trades pay. Slippage, "
         "partial fills and market impact were not simulated." if plain else
         f"- It was trained for the trading terms above and the `{trained['reward']}` reward; "
         "different costs change which trades pay. Partial fills were not simulated, and "
         "slippage only as the fixed and volatility terms above."),
        f"- It acts on closed bars: it needs the last {bars['lookback']} bars "
        "(see policy.json) and its own current position." if isinstance(bars, dict) else
        "- It needs TradeTune's observation vector (see policy.json).",
        "- It has seen only the market of the data range above.",
        "",
        "## Sweep config",
        "",
        "```json",
        json.dumps(config, indent=2, default=str),
        "```",
        "",
        "## Trial parameters",
        "",
        "```json",
        json.dumps({"params": trial.params, "settings": settings}, indent=2, default=str),
        "```",
        "",
        "## Versions",
        "",
        "```json",
        json.dumps(spec["versions"], indent=2, default=str),
        "```",
        "",
    ]
    return "\n".join(lines)
