"""Trade a trial's kept checkpoint on a split against buy-and-hold (``evaluate``), or the top
trials' validation against test side by side (``evaluate --top``). Imports torch and RLlib to
restore the checkpoint; never starts Ray.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from search.errors import StudyError, both
from search.results import degenerate
from search.results.summaries import judge_best, never_trades, overfitting_check
from search.study import audit, studies
from search.study.provenance import check_data_unchanged, space_of
from search.study.schema import ATTR_BROKEN, ATTR_FEASIBLE, ATTR_METRICS
from search.study.storage import open_existing
from search.study.trials import (
    checkpoint_of,
    first_value,
    get_trial,
    optuna_study_id,
    top_trials,
)
from trainables.settings import trial_env
from search.results.outputs import check_file, write_file

ACTIONS = both("--actions", "actions")


def evaluate_trial(url: str, name: str, number: int | None, split: str,
                   actions: Path | None = None, command: str | None = None,
                   force: bool = False, stress: bool = False) -> dict[str, Any]:
    """Restore a trial's kept checkpoint and score it on ``split`` against buy-and-hold; with
    ``actions``, also write its per-bar actions there as CSV (a new file, or with ``force`` over
    a file: the rule of ``search/results/outputs.py``, checked before anything is scored); with
    ``stress``, also whether its edge survives harsher costs (``search/results/stress.py``).

    A score on the test split is recorded in the study as a look (``command`` names it, default
    ``evaluate --split test [--trial N]``) before it is returned or written; see
    ``search/study/audit.py``.
    """
    if actions is not None:
        check_file(actions, force=force, option=ACTIONS, storage_url=url)
    study, trial = get_trial(url, name, number)
    space = space_of(study)
    check_data_unchanged(study)
    result, evaluation = score_checkpoint(study, space, trial, split, stress=stress)
    if split == "test":
        audit.record_look(study, [trial.number], command or "evaluate --split test" + (
            f" --trial {number}" if number is not None else ""))
    if actions is not None:
        write_file(actions, evaluation.write_actions, force=force, option=ACTIONS,
                   storage_url=url)
        result["actions_file"] = str(actions)
    return result


def score_checkpoint(study: Any, space: Any, trial: Any, split: str,
                     stress: bool = False) -> tuple[dict[str, Any], Any]:
    """A trial's kept checkpoint traded on ``split``: its figures (JSON-ready; with ``stress``,
    also under each cost stress) and the evaluation itself (per-bar actions, equity)."""
    from trainables.evaluation import evaluate
    from trainables.rllib_trainable import load_module

    source = checkpoint_of(trial)
    config = studies.stored_config(study)
    settings = space.replay(trial.params)
    module = load_module(source)
    env = trial_env(config, settings)
    result = evaluate(module, env, split)
    figures = result.metrics()
    scored = {"study": study.study_name, "trial": trial.number, "split": split,
              "validation_value": first_value(trial), **figures,
              "beats_buy_and_hold": result.pnl_pct > result.buy_and_hold_pct,
              "degenerate": degenerate.label(figures)}
    if stress:
        from search.results.stress import stress as stressed

        scored["stress"] = stressed(module, env, split)
    return scored, result


def compare_top(url: str, name: str, top: int, record: bool = True) -> dict[str, Any]:
    """Validation versus test, side by side, for the ``top`` best trials, plus the deflated
    Sharpe ratio of the best: how much of the validation ranking survives unseen data.

    The look at the test split is recorded in the study (``evaluate --top K``) with the study's
    audit count in ``study_test_looks``, unless ``record`` is False (the report records its
    looks itself, once)."""
    storage = open_existing(url)
    study = studies.load_study(storage, name)
    space = space_of(study)
    trials = top_trials(storage, optuna_study_id(study), top)
    if not trials:
        raise StudyError(f"study {name!r} has no COMPLETE trial yet")
    check_data_unchanged(study)
    rows = []
    for trial in trials:
        test, _ = score_checkpoint(study, space, trial, "test")
        val = trial.user_attrs.get(ATTR_METRICS, {})
        rows.append({"trial": trial.number, "value": first_value(trial),
                     "val_sharpe": val.get("sharpe"), "test_sharpe": test["sharpe"],
                     "val_pnl_pct": val.get("pnl_pct"), "test_pnl_pct": test["pnl_pct"],
                     "test_buy_and_hold_pct": test["buy_and_hold_pct"],
                     "beats_buy_and_hold": test["beats_buy_and_hold"],
                     "never_trades": never_trades(trial),
                     **({"feasible": trial.user_attrs[ATTR_FEASIBLE],
                         "constraints_broken": trial.user_attrs.get(ATTR_BROKEN) or []}
                        if ATTR_FEASIBLE in trial.user_attrs else {}),
                     "degenerate": degenerate.label(val)})
    best_metrics = trials[0].user_attrs.get(ATTR_METRICS, {})
    check = overfitting_check(storage, optuna_study_id(study), best_metrics)
    result = {"study": name, "trials": rows, "overfitting": check,
              "verdict": judge_best(storage, optuna_study_id(study), best_metrics)}
    if record:
        audit.record_look(study, [t.number for t in trials], f"evaluate --top {top}")
        result["study_test_looks"] = audit.summary(storage, optuna_study_id(study))
    return result
