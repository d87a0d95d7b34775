"""What ``best`` and ``status`` say about a study: trial summaries, the market it trades, the
overfitting check of its best trial. Reads the study; never starts Ray, never imports ray or torch.
"""
from __future__ import annotations

from typing import Any

from search.results import degenerate
from search.study import audit, studies
from search.study.provenance import space_of
from search.study.schema import (
    ATTR_BROKEN,
    ATTR_CHECKPOINT,
    ATTR_CONFIG,
    ATTR_FAIL,
    ATTR_FEASIBLE,
    ATTR_METRICS,
    ATTR_PROMOTION,
    ATTR_SEED,
    ATTR_STOP,
)
from search.study.storage import open_existing, redact, under_results
from search.study.trials import (
    completed_metrics,
    first_value,
    optuna_study_id,
    state_counts,
    stored_checkpoint,
    top_trials,
    tried_attrs,
)
from trainables.actions import action_levels
from trainables.settings import MARKET_KEYS, env_settings


def trial_summary(trial: Any, space: Any | None = None,
                  objectives: list[str] | None = None) -> dict[str, Any]:
    """What users need about one trial, JSON-ready; with ``objectives`` (a multi-objective
    study) also each objective's value by name."""
    checkpoint = stored_checkpoint(trial)
    summary = {
        "number": trial.number,
        "state": trial.state.name,
        "value": first_value(trial),
        "params": trial.params,
        "metrics": trial.user_attrs.get(ATTR_METRICS, {}),
        "checkpoint": str(checkpoint) if checkpoint and checkpoint.exists() else None,
        "stop_reason": trial.user_attrs.get(ATTR_STOP),
        "seed": trial.user_attrs.get(ATTR_SEED),
        "never_trades": never_trades(trial),
        "degenerate": degenerate.label(trial.user_attrs.get(ATTR_METRICS)),
    }
    if ATTR_FEASIBLE in trial.user_attrs:  # search.constraints: feasible ones rank first
        summary["feasible"] = trial.user_attrs[ATTR_FEASIBLE]
        summary["constraints_broken"] = trial.user_attrs.get(ATTR_BROKEN) or []
    if objectives and len(objectives) > 1 and trial.values:
        summary["objectives"] = dict(zip(objectives, trial.values, strict=True))
    if trial.user_attrs.get(ATTR_FAIL):
        summary["fail_reason"] = trial.user_attrs[ATTR_FAIL]
    if trial.user_attrs.get(ATTR_PROMOTION):  # `tradetune promote`: retrained on fresh seeds
        summary["promotion"] = judged_promotion(trial.user_attrs[ATTR_PROMOTION])
    if space is not None and trial.state.name == "COMPLETE":
        summary["settings"] = space.replay(trial.params)
    return summary


def market_of(config: dict[str, Any]) -> dict[str, Any]:
    """The market frictions and action set a study trades with (fixed for the whole study),
    JSON-ready: its config's ``env`` section completed with the defaults (a study stored
    before a setting existed traded with its default), plus the exposure levels."""
    env = env_settings({k: v for k, v in (config.get("env") or {}).items() if k in MARKET_KEYS})
    market = {key: env[key] for key in MARKET_KEYS}
    market["levels"] = list(action_levels(env["actions"]))
    return market


# `tradetune promote`'s rule (search/sweep/promote.py runs it; it sits here because every
# reader of a stored promotion shows its verdict: best, the report, the model card). A
# selected trial's score is biased upwards (it won a selection among many trials on these
# seeds), so fresh seeds are expected to score somewhat lower even when the configuration is
# good; keeping at least half of the claimed score, and staying above 0 (an edge at all),
# separates "good, with some selection luck" from "mostly selection luck". "Half of the
# claim" means nothing for a claim at or below 0 (half of -3 is beaten by any score, even a
# worse one): there the rule gives no verdict, and the figures speak for themselves.
REPRODUCE_RATIO = 0.5
RULE = (f"reproduces when the fresh seeds' mean score is above 0 and at least "
        f"{REPRODUCE_RATIO:.0%} of the study's value (no verdict when the study's value is "
        "<= 0)")


def promotion_verdict(study_value: float, mean: float) -> str:
    """The verdict of ``RULE`` on fresh seeds scoring ``mean`` against the study's value."""
    if not study_value > 0:
        return (f"no verdict: the study's value is <= 0 ({study_value:.4g}), where the ratio "
                "rule is undefined; compare the fresh seeds' scores with it yourself")
    reproduces = mean > 0 and mean >= REPRODUCE_RATIO * study_value
    return "reproduces" if reproduces else "does not reproduce"


def judged_promotion(stored: dict[str, Any]) -> dict[str, Any]:
    """A promotion as stored on its trial, its verdict given by today's ``RULE``: one stored
    before the rule said "no verdict" for a study value <= 0 may say "reproduces" for it."""
    value, mean = stored.get("study_value"), stored.get("mean")
    if "fresh_active_sharpe_per_bar" in stored:  # judged against buy-and-hold, as it stands
        return stored
    if not isinstance(value, (int, float)) or not isinstance(mean, (int, float)):
        return stored
    return {**stored, "verdict": promotion_verdict(value, mean), "rule": RULE,
            "ratio": mean / value if value > 0 else None}


def never_trades(trial: Any) -> bool:
    """Whether the trial's kept checkpoint made no trade on the validation split: it stayed in
    cash, so its score (0 for Sharpe and P&L) is the absence of a strategy, not a strategy."""
    return trial.user_attrs.get(ATTR_METRICS, {}).get("trades") == 0


def best(url: str, name: str, top: int) -> list[dict[str, Any]]:
    """The ``top`` best COMPLETE trials, best first, with ready-to-use settings.

    A multi-objective study has no single ranking: its rows are the Pareto front (trials no
    other trial beats on every objective), highest first objective first, at most ``top``.
    Every row carries ``study_test_looks``, the study's test-split audit count (the rows stay a
    list, so existing consumers keep working).
    """
    storage = open_existing(url)
    study = studies.load_study(storage, name)
    space = space_of(study)
    objectives = studies.objective_names(studies.stored_config(study))
    if len(study.directions) > 1:
        front = sorted(study.best_trials, key=lambda t: (-t.values[0], t.number))[:top]
        rows = [{**trial_summary(t, space, objectives), "pareto": True} for t in front]
    else:
        rows = [trial_summary(t, space) for t in top_trials(storage, optuna_study_id(study), top)]
    if rows:
        rows[0]["overfitting"] = overfitting_check(storage, optuna_study_id(study),
                                                   rows[0]["metrics"])
        rows[0]["verdict"] = judge_best(storage, optuna_study_id(study), rows[0]["metrics"])
    test_looks = audit.summary(storage, optuna_study_id(study))
    market = market_of(studies.stored_config(study))
    for row in rows:
        row["study_test_looks"] = test_looks
        row["market"] = market
    return rows


def overfitting_check(storage: Any, study_id: int, metrics: dict[str, Any]) -> dict[str, Any]:
    """Deflated Sharpe ratio of the best trial, given every COMPLETE trial's validation Sharpe."""
    from search.results.overfitting import verdict

    sharpes = [m["sharpe_per_bar"] for m in completed_metrics(storage, study_id)
               if "sharpe_per_bar" in m]
    if "sharpe_per_bar" not in metrics or not sharpes:
        return {"verdict": "no per-bar Sharpe stored for this study; cannot judge overfitting"}
    kind = degenerate.label(metrics)
    mean = sum(sharpes) / len(sharpes)
    variance = sum((x - mean) ** 2 for x in sharpes) / max(len(sharpes) - 1, 1)
    result = verdict(metrics["sharpe_per_bar"], int(metrics.get("bars", 0)) - 1,
                     metrics.get("return_skew", 0.0), metrics.get("return_kurtosis", 3.0),
                     len(sharpes), variance)
    text = result.text if kind is None else (
        f"no edge: the best trial is {kind} on validation, so its score is the market's or "
        "cash's, not a strategy's (deflated Sharpe not read as skill)")
    return {"deflated_sharpe": result.dsr, "n_trials": result.n_trials,
            "expected_max_sharpe_per_bar": result.expected_max_sharpe,
            "sharpe_per_bar": metrics["sharpe_per_bar"], "verdict": text,
            **({"degenerate": kind} if kind else {})}


def judge_best(storage: Any, study_id: int, metrics: dict[str, Any]) -> dict[str, Any]:
    """The verdict on the best trial (``search/results/verdict.py``): its edge over holding the
    asset, deflated by every configuration tried, and the PBO of the study's selection."""
    from search.results.verdict import judge

    tried = [m for m in tried_attrs(storage, study_id, ATTR_METRICS) if isinstance(m, dict)]
    checkpoints = [under_results(p) for p in tried_attrs(storage, study_id, ATTR_CHECKPOINT)
                   if isinstance(p, str)]
    return judge(metrics, tried, checkpoints)


def status(url: str, name: str | None) -> dict[str, Any] | list[dict[str, Any]]:
    """State counts, best value and config of one study, or a line per study."""
    storage = open_existing(url)
    if name is None:
        return [_status_of(storage, s) for s in studies.study_names(storage)]
    studies.load_study(storage, name)
    result = _status_of(storage, name)
    study = studies.load_study(storage, name)
    result["config"] = study.user_attrs.get(ATTR_CONFIG)
    result["storage"] = redact(url)
    return result


def _status_of(storage: Any, name: str) -> dict[str, Any]:
    study_id = storage.get_study_id_from_name(name)
    counts = state_counts(storage, study_id)
    top = top_trials(storage, study_id, 1)
    return {"study": name, "counts": counts,
            "best_value": first_value(top[0]) if top else None,
            "best_trial": top[0].number if top else None,
            "best_never_trades": never_trades(top[0]) if top else None,
            "best_degenerate": (degenerate.label(top[0].user_attrs.get(ATTR_METRICS)) if top
                                else None),
            "best_verdict": (judge_best(storage, study_id, top[0].user_attrs.get(ATTR_METRICS, {}))
                             ["verdict"] if top else None),
            "test_looks": audit.summary(storage, study_id)}
