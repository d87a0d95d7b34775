"""Read a study: best trials, state counts, export. Never starts Ray, never imports ray/torch.

Top-k selection and state counts are single SQL queries on Optuna's schema, because
``study.trials`` loads every trial with its intermediate values (seconds at 10,000 trials,
see scripts/bench_query.py); the chosen trials are then read through Optuna's storage API.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from search.errors import StudyError
from search.storage import open_existing as _open_existing, redact
from search import study as studies
from search.searcher_attrs import (ATTR_CHECKPOINT, ATTR_FAIL, ATTR_METRICS, ATTR_SEED,
                                   ATTR_STOP)

STATES = ("COMPLETE", "RUNNING", "FAIL", "PRUNED", "WAITING")


def open_existing(url: str):
    """Open a storage for reading; creates nothing (see ``search.storage.open_existing``)."""
    return _open_existing(url)


def _study_id(storage: Any, name: str) -> int:
    return storage.get_study_id_from_name(name)


def state_counts(storage: Any, study_id: int) -> dict[str, int]:
    from sqlalchemy import text

    counts = {state: 0 for state in STATES}
    with storage.engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT state, COUNT(*) FROM trials WHERE study_id = :sid GROUP BY state"),
            {"sid": study_id})
        for state, count in rows:
            counts[str(getattr(state, "name", state))] = int(count)
    return counts


def top_trials(storage: Any, study_id: int, k: int) -> list[Any]:
    """The ``k`` COMPLETE trials with the highest value, best first."""
    from sqlalchemy import text

    with storage.engine.connect() as connection:
        ids = [row[0] for row in connection.execute(text(
            "SELECT t.trial_id FROM trials t JOIN trial_values v ON v.trial_id = t.trial_id "
            "WHERE t.study_id = :sid AND t.state = 'COMPLETE' AND v.objective = 0 "
            "AND v.value_type = 'FINITE' ORDER BY v.value DESC, t.number ASC LIMIT :k"),
            {"sid": study_id, "k": k})]
    return [storage.get_trial(trial_id) for trial_id in ids]


def first_value(trial: Any) -> float | None:
    """A trial's value, or its first objective's in a multi-objective study (the one that
    ranks trials when a single best is needed)."""
    return trial.values[0] if trial.values else None


def trial_summary(trial: Any, space: Any | None = None,
                  objectives: list[str] | None = None) -> dict[str, Any]:
    """What users need about one trial, JSON-ready; with ``objectives`` (a multi-objective
    study) also each objective's value by name."""
    checkpoint = trial.user_attrs.get(ATTR_CHECKPOINT)
    summary = {
        "number": trial.number,
        "state": trial.state.name,
        "value": first_value(trial),
        "params": trial.params,
        "metrics": trial.user_attrs.get(ATTR_METRICS, {}),
        "checkpoint": checkpoint if checkpoint and Path(checkpoint).exists() else None,
        "stop_reason": trial.user_attrs.get(ATTR_STOP),
        "seed": trial.user_attrs.get(ATTR_SEED),
    }
    if objectives and len(objectives) > 1 and trial.values:
        summary["objectives"] = dict(zip(objectives, trial.values, strict=True))
    if trial.user_attrs.get(ATTR_FAIL):
        summary["fail_reason"] = trial.user_attrs[ATTR_FAIL]
    if space is not None and trial.state.name == "COMPLETE":
        summary["settings"] = space.replay(trial.params)
    return summary


def _space_of(study: Any):
    from spaces import get_space

    config = studies.stored_config(study)
    return get_space(config["algorithm"], config["search"]["space_overrides"],
                     config["search"]["space"])


def best(url: str, name: str, top: int) -> list[dict[str, Any]]:
    """The ``top`` best COMPLETE trials, best first, with ready-to-use settings.

    A multi-objective study has no single ranking: its rows are the Pareto front (trials no
    other trial beats on every objective), highest first objective first, at most ``top``.
    """
    storage = open_existing(url)
    study = studies.load_study(storage, name)
    space = _space_of(study)
    objectives = studies.objective_names(studies.stored_config(study))
    if len(study.directions) > 1:
        front = sorted(study.best_trials, key=lambda t: (-t.values[0], t.number))[:top]
        rows = [{**trial_summary(t, space, objectives), "pareto": True} for t in front]
    else:
        rows = [trial_summary(t, space) for t in top_trials(storage, study._study_id, top)]
    if rows:
        rows[0]["overfitting"] = overfitting_check(storage, study._study_id, rows[0]["metrics"])
    return rows


def overfitting_check(storage: Any, study_id: int, metrics: dict[str, Any]) -> dict[str, Any]:
    """Deflated Sharpe ratio of the best trial, given every COMPLETE trial's validation Sharpe."""
    import json

    from sqlalchemy import text

    from search.overfitting import verdict

    with storage.engine.connect() as connection:
        blobs = connection.execute(text(
            "SELECT a.value_json FROM trial_user_attributes a JOIN trials t "
            "ON t.trial_id = a.trial_id WHERE t.study_id = :sid AND t.state = 'COMPLETE' "
            "AND a.key = :key"), {"sid": study_id, "key": ATTR_METRICS}).scalars().all()
    sharpes = [m["sharpe_per_bar"] for m in map(json.loads, blobs) if "sharpe_per_bar" in m]
    if "sharpe_per_bar" not in metrics or not sharpes:
        return {"verdict": "no per-bar Sharpe stored for this study; cannot judge overfitting"}
    mean = sum(sharpes) / len(sharpes)
    variance = sum((x - mean) ** 2 for x in sharpes) / max(len(sharpes) - 1, 1)
    result = verdict(metrics["sharpe_per_bar"], int(metrics.get("bars", 0)) - 1,
                     metrics.get("return_skew", 0.0), metrics.get("return_kurtosis", 3.0),
                     len(sharpes), variance)
    return {"deflated_sharpe": result.dsr, "n_trials": result.n_trials,
            "expected_max_sharpe_per_bar": result.expected_max_sharpe,
            "sharpe_per_bar": metrics["sharpe_per_bar"], "verdict": result.text}


def status(url: str, name: str | None) -> dict[str, Any] | list[dict[str, Any]]:
    """State counts, best value and config of one study, or a line per study."""
    storage = open_existing(url)
    if name is None:
        return [_status_of(storage, s) for s in studies.study_names(storage)]
    studies.load_study(storage, name)
    result = _status_of(storage, name)
    study = studies.load_study(storage, name)
    result["config"] = study.user_attrs.get(studies.ATTR_CONFIG)
    result["storage"] = redact(url)
    return result


def _status_of(storage: Any, name: str) -> dict[str, Any]:
    study_id = _study_id(storage, name)
    counts = state_counts(storage, study_id)
    top = top_trials(storage, study_id, 1)
    return {"study": name, "counts": counts,
            "best_value": first_value(top[0]) if top else None,
            "best_trial": top[0].number if top else None}


def get_trial(url: str, name: str, number: int | None):
    """A study's trial by number, or its best COMPLETE trial; with the study."""
    storage = open_existing(url)
    study = studies.load_study(storage, name)
    if number is None:
        top = top_trials(storage, study._study_id, 1)
        if not top:
            raise StudyError(f"study {name!r} has no COMPLETE trial yet")
        return study, top[0]
    if number < 0:
        raise StudyError(f"--trial must be a trial number >= 0, got {number}")
    try:
        trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    except KeyError:
        raise StudyError(f"study {name!r} has no trial {number} (it has "
                         f"{len(study.get_trials(deepcopy=False))} trials)") from None
    return study, storage.get_trial(trial_id)


def checkpoint_of(trial: Any) -> Path:
    """The kept checkpoint directory of a trial, or a one-line error saying why there is none."""
    path = trial.user_attrs.get(ATTR_CHECKPOINT)
    if trial.state.name != "COMPLETE":
        raise StudyError(f"trial {trial.number} is {trial.state.name}"
                         + (f" ({trial.user_attrs[ATTR_FAIL]})" if ATTR_FAIL in trial.user_attrs
                            else "") + "; pick a COMPLETE trial (see `tradetune best`)")
    if not path:
        raise StudyError(f"trial {trial.number} has no checkpoint recorded")
    if not Path(path).exists():
        raise StudyError(f"checkpoint of trial {trial.number} is missing: {path}")
    return Path(path)


def export(url: str, name: str, number: int | None, out: Path) -> dict[str, Any]:
    """Write the trial's RLlib settings, the sweep config and its checkpoint under ``out``."""
    study, trial = get_trial(url, name, number)
    source = checkpoint_of(trial)
    config = studies.stored_config(study)
    settings = _space_of(study).replay(trial.params)
    out.mkdir(parents=True, exist_ok=True)
    algorithm = config["algorithm"].upper()
    env = {"data": config["data"], **config["env"], **settings["env"]}
    rllib = {
        "algorithm": algorithm,
        "framework": "torch",
        "environment": {"env": "trainables.env:TradingEnv", "env_config": env},
        "training": settings["training"],
        "rl_module": {"model_config": settings["model"]},
        "debugging": {"seed": trial.user_attrs.get(ATTR_SEED)},
        "how_to_load": (f"from ray.rllib.algorithms.{config['algorithm']} import {algorithm}Config;"
                        f" cfg = {algorithm}Config().training(**d['training'])"
                        ".rl_module(**d['rl_module'])"),
    }
    (out / "rllib_config.json").write_text(json.dumps(rllib, indent=2, default=str))
    (out / "sweep_config.json").write_text(json.dumps(config, indent=2, default=str))
    (out / "trial.json").write_text(json.dumps(trial_summary(trial), indent=2, default=str))
    target = out / "checkpoint"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    return {"study": name, "trial": trial.number, "value": first_value(trial), "out": str(out),
            "files": sorted(p.name for p in out.iterdir())}



def evaluate_trial(url: str, name: str, number: int | None, split: str) -> dict[str, Any]:
    """Restore a trial's kept checkpoint and score it on ``split`` against buy-and-hold."""
    study, trial = get_trial(url, name, number)
    return _score_checkpoint(study, _space_of(study), trial, split)


def _score_checkpoint(study: Any, space: Any, trial: Any, split: str) -> dict[str, Any]:
    from trainables.evaluation import evaluate
    from trainables.rllib_trainable import load_module

    source = checkpoint_of(trial)
    config = studies.stored_config(study)
    settings = space.replay(trial.params)
    module = load_module(source)
    env = {"data": config["data"], **config["env"], **settings["env"]}
    result = evaluate(module, env, split)
    return {"study": study.study_name, "trial": trial.number, "split": split,
            "validation_value": first_value(trial), **result.metrics(),
            "beats_buy_and_hold": result.pnl_pct > result.buy_and_hold_pct}


def compare_top(url: str, name: str, top: int) -> dict[str, Any]:
    """Validation versus test, side by side, for the ``top`` best trials, plus the deflated
    Sharpe ratio of the best: how much of the validation ranking survives unseen data."""
    storage = open_existing(url)
    study = studies.load_study(storage, name)
    space = _space_of(study)
    trials = top_trials(storage, study._study_id, top)
    if not trials:
        raise StudyError(f"study {name!r} has no COMPLETE trial yet")
    rows = []
    for trial in trials:
        test = _score_checkpoint(study, space, trial, "test")
        val = trial.user_attrs.get(ATTR_METRICS, {})
        rows.append({"trial": trial.number, "value": first_value(trial),
                     "val_sharpe": val.get("sharpe"), "test_sharpe": test["sharpe"],
                     "val_pnl_pct": val.get("pnl_pct"), "test_pnl_pct": test["pnl_pct"],
                     "test_buy_and_hold_pct": test["buy_and_hold_pct"],
                     "beats_buy_and_hold": test["beats_buy_and_hold"]})
    check = overfitting_check(storage, study._study_id, trials[0].user_attrs.get(ATTR_METRICS, {}))
    return {"study": name, "trials": rows, "overfitting": check}
