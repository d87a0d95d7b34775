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

from search import audit
from search.errors import SpaceError, StudyError
from search.formats import number
from search.onnx_export import BUNDLE_FILES, ONNX_FILE
from search.outdir import write_folder
from search.storage import open_existing as _open_existing
from search.storage import redact, under_results
from search import study as studies
from search.searcher_attrs import (ATTR_CHECKPOINT, ATTR_FAIL, ATTR_METRICS, ATTR_PROMOTION,
                                   ATTR_SEED, ATTR_STOP)
from trainables.actions import action_levels, action_meanings, describe_actions
from trainables.settings import MARKET_KEYS, env_settings, trial_env

# Every name `export` writes into its folder; all of them are replaced by each export (a name
# this export does not write is removed), nothing else there is touched.
EXPORT_NAMES = ("rllib_config.json", "sweep_config.json", "trial.json", "checkpoint",
                *BUNDLE_FILES)


def open_existing(url: str):
    """Open a storage for reading; creates nothing (see ``search.storage.open_existing``)."""
    return _open_existing(url)


def _study_id(storage: Any, name: str) -> int:
    return storage.get_study_id_from_name(name)


def state_counts(storage: Any, study_id: int) -> dict[str, int]:
    """Trials per state of the study ``study_id`` (every state named, 0 if none)."""
    return storage.count_trial_states(study_id)


def study_state_counts(study: Any) -> dict[str, int]:
    """``state_counts`` of a loaded study, through its storage (a driver's retries)."""
    from search.claims import storage_backend

    return state_counts(storage_backend(study), study._study_id)


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
    }
    if objectives and len(objectives) > 1 and trial.values:
        summary["objectives"] = dict(zip(objectives, trial.values, strict=True))
    if trial.user_attrs.get(ATTR_FAIL):
        summary["fail_reason"] = trial.user_attrs[ATTR_FAIL]
    if trial.user_attrs.get(ATTR_PROMOTION):  # `tradetune promote`: retrained on fresh seeds
        summary["promotion"] = trial.user_attrs[ATTR_PROMOTION]
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


def describe_market(market: dict[str, Any]) -> str:
    """One line for people: ``actions long_short (short 100%, cash, long 100%), commission
    0.1%, slippage 2 bps, borrow 5%/year``."""
    slippage = market["slippage"]
    slipped = [f"{number(slippage['bps'])} bps"] if slippage["bps"] else []
    if slippage["vol_mult"]:
        slipped.append(f"{number(slippage['vol_mult'])} x {slippage['vol_window']}-bar "
                       "volatility")
    shorts = min(market["levels"]) < 0
    return (f"actions {describe_actions(market['actions'])} "
            f"({', '.join(action_meanings(market['levels']))}), commission "
            f"{number(market['commission'] * 100)}%, slippage "
            f"{' + '.join(slipped) or 'none'}"
            + (f", borrow {number(market['borrow_rate'] * 100)}%/year" if shorts else ""))


def never_trades(trial: Any) -> bool:
    """Whether the trial's kept checkpoint made no trade on the validation split: it stayed in
    cash, so its score (0 for Sharpe and P&L) is the absence of a strategy, not a strategy."""
    return trial.user_attrs.get(ATTR_METRICS, {}).get("trades") == 0


def space_of(study: Any):
    """The study's search space as launched, to replay stored parameters into settings.

    Refuses (one line) when a custom space's module cannot be imported here, or when the space
    differs from the one the study was launched with: replaying parameters through another
    space would give settings the trials never ran with.
    """
    import importlib

    from spaces import get_space

    config = studies.stored_config(study)
    custom = config["search"].get("space")
    if custom:
        module = str(custom).partition(":")[0]
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - any failure to import user code is one line
            top = module.split(".")[0]
            raise StudyError(
                f"study {study.study_name!r} uses the custom search space {custom!r}, but "
                f"module {module!r} cannot be imported here ({type(exc).__name__}: {exc}); "
                f"make it importable, e.g. PYTHONPATH=/folder/holding/{top} tradetune ...") \
                from exc
    try:
        space = get_space(config["algorithm"], config["search"]["space_overrides"], custom)
    except SpaceError as exc:
        raise StudyError(f"the search space of study {study.study_name!r} cannot be loaded: "
                         f"{exc}") from exc
    detail = (studies.space_change(study, space) if studies.ATTR_SPACE in study.user_attrs
              else None)  # older studies stored no space
    if detail:
        raise StudyError(f"the search space of study {study.study_name!r} changed since launch "
                         f"({detail}), so its trials' settings cannot be replayed; restore the "
                         "space as it was at launch")
    return space


def check_data_unchanged(study: Any) -> None:
    """Refuse to trade a study's checkpoints on market data other than the data it was launched
    on (the fingerprint ``launch`` stored). Studies without a stored fingerprint pass."""
    saved = study.user_attrs.get(studies.ATTR_DATA)
    if not saved:
        return
    data = studies.stored_config(study).get("data") or {}
    path = data.get("path")
    what = f"data file {path}" if path else "the synthetic data"
    try:
        now = studies.data_fingerprint(data)
    except OSError as exc:
        raise StudyError(f"{what} of study {study.study_name!r} cannot be read "
                         f"({exc.strerror or exc}); restore it as it was at launch") from None
    if now != saved:
        raise StudyError(f"{what} changed since study {study.study_name!r} was launched "
                         f"(fingerprint {saved} -> {now}); restore it or launch a new study")


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
        rows = [trial_summary(t, space) for t in top_trials(storage, study._study_id, top)]
    if rows:
        rows[0]["overfitting"] = overfitting_check(storage, study._study_id, rows[0]["metrics"])
    test_looks = audit.summary(storage, study._study_id)
    market = market_of(studies.stored_config(study))
    for row in rows:
        row["study_test_looks"] = test_looks
        row["market"] = market
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
            "best_trial": top[0].number if top else None,
            "best_never_trades": never_trades(top[0]) if top else None,
            "test_looks": audit.summary(storage, study_id)}


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


def stored_checkpoint(trial: Any) -> Path | None:
    """Where a trial's kept checkpoint is: stored relative to the results directory (resolved
    against today's ``TRADETUNE_RESULTS``), or absolute in older studies."""
    stored = trial.user_attrs.get(ATTR_CHECKPOINT)
    return under_results(stored) if stored else None


def checkpoint_of(trial: Any) -> Path:
    """The kept checkpoint directory of a trial, or a one-line error saying why there is none."""
    path = stored_checkpoint(trial)
    if trial.state.name != "COMPLETE":
        raise StudyError(f"trial {trial.number} is {trial.state.name}"
                         + (f" ({trial.user_attrs[ATTR_FAIL]})" if ATTR_FAIL in trial.user_attrs
                            else "") + "; pick a COMPLETE trial (see `tradetune best`)")
    if not path:
        raise StudyError(f"trial {trial.number} has no checkpoint recorded")
    if not path.exists():
        stored = trial.user_attrs[ATTR_CHECKPOINT]
        hint = ("" if Path(stored).is_absolute() else
                "; if the results folder moved, set TRADETUNE_RESULTS to its new place")
        raise StudyError(f"checkpoint of trial {trial.number} is missing: {path}{hint}")
    return path


def export(url: str, name: str, number: int | None, out: Path, onnx: bool = False,
           force: bool = False) -> dict[str, Any]:
    """Write the trial's RLlib settings, the sweep config and its checkpoint under ``out``;
    with ``onnx``, also the deployable bundle (search/onnx_export.py; imports torch).

    ``out`` must be new, empty or an earlier export of the same study (``trial.json`` names the
    study), unless ``force``; either way only the names in ``EXPORT_NAMES`` are replaced, all of
    them, so no file of an earlier export is left beside this one.
    """
    study, trial = get_trial(url, name, number)
    source = checkpoint_of(trial)
    config = studies.stored_config(study)
    settings = space_of(study).replay(trial.params)
    from spaces import algorithm_of

    algorithm = config["algorithm"].upper()
    declared = algorithm_of(config["algorithm"])  # its RLlib config class, named by its space
    env = trial_env(config, settings)
    rllib = {
        "algorithm": algorithm,
        "framework": "torch",
        "environment": {"env": "trainables.env:TradingEnv", "env_config": env},
        "training": settings["training"],
        "rl_module": {"model_config": settings["model"]},
        "debugging": {"seed": trial.user_attrs.get(ATTR_SEED)},
        "how_to_load": (f"from {declared.config_module} import {declared.config_class_name};"
                        f" cfg = {declared.config_class_name}().training(**d['training'])"
                        ".rl_module(**d['rl_module'])"),
    }
    summary = {"study": name, **trial_summary(trial)}

    def write(folder: Path) -> None:
        (folder / "rllib_config.json").write_text(json.dumps(rllib, indent=2, default=str))
        (folder / "sweep_config.json").write_text(json.dumps(config, indent=2, default=str))
        (folder / "trial.json").write_text(json.dumps(summary, indent=2, default=str))
        shutil.copytree(source, folder / "checkpoint")
        if onnx:
            from search.onnx_export import write_bundle

            write_bundle(folder, url, study, trial)

    files = write_folder(out, EXPORT_NAMES, write, ours=lambda folder: export_study(folder) == name,
                         force=force, what=f"an earlier export of study {name!r}")
    result = {"study": name, "trial": trial.number, "value": first_value(trial), "out": str(out),
              "files": files}
    if onnx:
        result["onnx"] = str(out / ONNX_FILE)
    return result


def export_study(folder: Path) -> str | None:
    """The study an export folder was written from (``trial.json``, or ``sweep_config.json`` of
    exports older than the study in ``trial.json``); None if it is not an export."""
    for marker in ("trial.json", "sweep_config.json"):
        try:
            data = json.loads((folder / marker).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("study"), str):
            return data["study"]
    return None


def evaluate_trial(url: str, name: str, number: int | None, split: str,
                   actions: Path | None = None, command: str | None = None) -> dict[str, Any]:
    """Restore a trial's kept checkpoint and score it on ``split`` against buy-and-hold; with
    ``actions``, also write its per-bar actions there as CSV.

    A score on the test split is recorded in the study as a look (``command`` names it, default
    ``evaluate --split test [--trial N]``) before it is returned; see ``search/audit.py``.
    """
    if actions is not None and actions.is_dir():
        raise StudyError(f"--actions {actions} is a directory; give a file name such as "
                         "actions.csv")
    study, trial = get_trial(url, name, number)
    space = space_of(study)
    check_data_unchanged(study)
    result = _score_checkpoint(study, space, trial, split, actions)
    if split == "test":
        audit.record_look(study, [trial.number], command or "evaluate --split test" + (
            f" --trial {number}" if number is not None else ""))
    return result


def _score_checkpoint(study: Any, space: Any, trial: Any, split: str,
                      actions: Path | None = None) -> dict[str, Any]:
    from trainables.evaluation import evaluate
    from trainables.rllib_trainable import load_module

    source = checkpoint_of(trial)
    config = studies.stored_config(study)
    settings = space.replay(trial.params)
    module = load_module(source)
    env = trial_env(config, settings)
    result = evaluate(module, env, split)
    written = {}
    if actions is not None:
        try:
            actions.parent.mkdir(parents=True, exist_ok=True)
            result.write_actions(actions)
        except OSError as exc:
            raise StudyError(f"cannot write --actions {actions}: "
                             f"{exc.strerror or exc}") from None
        written = {"actions_file": str(actions)}
    return {"study": study.study_name, "trial": trial.number, "split": split,
            "validation_value": first_value(trial), **result.metrics(),
            "beats_buy_and_hold": result.pnl_pct > result.buy_and_hold_pct, **written}


def compare_top(url: str, name: str, top: int, record: bool = True) -> dict[str, Any]:
    """Validation versus test, side by side, for the ``top`` best trials, plus the deflated
    Sharpe ratio of the best: how much of the validation ranking survives unseen data.

    The look at the test split is recorded in the study (``evaluate --top K``) with the study's
    audit count in ``study_test_looks``, unless ``record`` is False (the report records its
    looks itself, once)."""
    storage = open_existing(url)
    study = studies.load_study(storage, name)
    space = space_of(study)
    trials = top_trials(storage, study._study_id, top)
    if not trials:
        raise StudyError(f"study {name!r} has no COMPLETE trial yet")
    check_data_unchanged(study)
    rows = []
    for trial in trials:
        test = _score_checkpoint(study, space, trial, "test")
        val = trial.user_attrs.get(ATTR_METRICS, {})
        rows.append({"trial": trial.number, "value": first_value(trial),
                     "val_sharpe": val.get("sharpe"), "test_sharpe": test["sharpe"],
                     "val_pnl_pct": val.get("pnl_pct"), "test_pnl_pct": test["pnl_pct"],
                     "test_buy_and_hold_pct": test["buy_and_hold_pct"],
                     "beats_buy_and_hold": test["beats_buy_and_hold"],
                     "never_trades": never_trades(trial)})
    check = overfitting_check(storage, study._study_id, trials[0].user_attrs.get(ATTR_METRICS, {}))
    result = {"study": name, "trials": rows, "overfitting": check}
    if record:
        audit.record_look(study, [t.number for t in trials], f"evaluate --top {top}")
        result["study_test_looks"] = audit.summary(storage, study._study_id)
    return result
