"""A study's trials as stored: state counts and top trials in one SQL query each, a trial by
number, its kept checkpoint, and the bookkeeping of trials whose driver is gone.

Top-k selection and state counts are single SQL queries on Optuna's schema, because
``study.trials`` loads every trial with its intermediate values (seconds at 10,000 trials,
see scripts/bench_query.py); the chosen trials are then read through Optuna's storage API.
Ray-, torch- and pandas-free.
"""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

from search.errors import StudyError, both
from search.study import studies
from search.study.schema import ATTR_CHECKPOINT, ATTR_FAIL, ATTR_FEASIBLE, ATTR_METRICS
from search.study.storage import open_existing, under_results


def state_counts(storage: Any, study_id: int) -> dict[str, int]:
    """Trials per state of the study ``study_id`` (every state named, 0 if none)."""
    return storage.count_trial_states(study_id)


def study_state_counts(study: Any) -> dict[str, int]:
    """``state_counts`` of a loaded study, through its storage (a driver's retries)."""
    from search.study.claims import storage_backend

    return state_counts(storage_backend(study), study._study_id)


def top_trials(storage: Any, study_id: int, k: int) -> list[Any]:
    """The ``k`` COMPLETE trials with the highest value, best first; with
    ``search.constraints``, the feasible ones before the others."""
    from sqlalchemy import text

    with storage.engine.connect() as connection:
        ids = [row[0] for row in connection.execute(text(
            "SELECT t.trial_id FROM trials t JOIN trial_values v ON v.trial_id = t.trial_id "
            "LEFT JOIN trial_user_attributes f ON f.trial_id = t.trial_id AND f.key = :feasible "
            "WHERE t.study_id = :sid AND t.state = 'COMPLETE' AND v.objective = 0 "
            "AND v.value_type = 'FINITE' "
            "ORDER BY CASE WHEN f.value_json = 'false' THEN 1 ELSE 0 END, v.value DESC, "
            "t.number ASC LIMIT :k"), {"sid": study_id, "k": k, "feasible": ATTR_FEASIBLE})]
    return [storage.get_trial(trial_id) for trial_id in ids]


def first_value(trial: Any) -> float | None:
    """A trial's value, or its first objective's in a multi-objective study (the one that
    ranks trials when a single best is needed)."""
    return trial.values[0] if trial.values else None


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
        raise StudyError(f"{both('--trial', 'trial')} must be a trial number >= 0, got {number}")
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
                            else "") + "; pick a COMPLETE trial (see "
                         f"`{both('tradetune best', 'Study.best()')}`)")
    if not path:
        raise StudyError(f"trial {trial.number} has no checkpoint recorded")
    if not path.exists():
        stored = trial.user_attrs[ATTR_CHECKPOINT]
        hint = ("" if Path(stored).is_absolute() else
                "; if the results folder moved, set TRADETUNE_RESULTS to its new place")
        raise StudyError(f"checkpoint of trial {trial.number} is missing: {path}{hint}")
    return path


STALE_DRIVER_S = 60.0


def fail_orphaned_trials(study: Any) -> int:
    """Mark FAIL every RUNNING trial whose driver is gone (same host and its process is dead,
    or no heartbeat for a minute). Optuna's own heartbeat does not cover Ray's ask/tell."""
    from optuna.trial import TrialState

    from search.study.schema import ATTR_DRIVER, HEARTBEAT_PREFIX

    failed = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        driver = trial.user_attrs.get(ATTR_DRIVER)
        beat = study.user_attrs.get(HEARTBEAT_PREFIX + str(driver)) if driver else None
        if beat and driver_alive(beat):
            continue
        fail_trial(study, trial._trial_id, "driver stopped while the trial was running")
        failed += 1
    return failed


def driver_alive(beat: dict[str, Any]) -> bool:
    """Whether the driver of a heartbeat still runs: on this host its process is alive (and is
    not this one), elsewhere it beat within ``STALE_DRIVER_S``."""
    if beat.get("host") == socket.gethostname():
        try:
            os.kill(int(beat["pid"]), 0)
        except (ProcessLookupError, ValueError, KeyError):
            return False
        except PermissionError:
            return True
        return beat.get("pid") != os.getpid()
    return time.time() - float(beat.get("time", 0)) < STALE_DRIVER_S


def finish_interrupted(study: Any, driver_id: str, reason: str = "sweep interrupted") -> bool:
    """Trials of this driver still RUNNING after Tune returned were cut off (Ctrl-C, or an
    error that ended the driver): FAIL with ``reason``."""
    from optuna.trial import TrialState

    from search.study.schema import ATTR_DRIVER

    cut = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
           if t.user_attrs.get(ATTR_DRIVER) == driver_id]
    for trial in cut:
        fail_trial(study, trial._trial_id, reason)
    return bool(cut)


def fail_trial(study: Any, trial_id: int, reason: str) -> None:
    """Mark a RUNNING trial FAIL and record why (``fail_reason``, shown by ``best``, ``status``
    and the report). For trials this process holds no ``optuna.Trial`` of (another driver's, or
    ones Tune cut off): Optuna has no public call to finish those, hence the study's storage."""
    from optuna.trial import TrialState

    from search.study.schema import ATTR_FAIL

    study._storage.set_trial_user_attr(trial_id, ATTR_FAIL, reason)
    study._storage.set_trial_state_values(trial_id, TrialState.FAIL)


def optuna_study_id(study: Any) -> int:
    """Optuna's id of a loaded study: its storage API and tables speak ids, not names."""
    return study._study_id


def optuna_trial_id(trial: Any) -> int:
    """Optuna's id of a trial (unique in the storage; ``trial.number`` is unique per study)."""
    return trial._trial_id


def storage_of(study: Any) -> Any:
    """The storage a loaded study reads and writes through (Optuna may wrap ours in a cache)."""
    return study._storage


def completed_metrics(storage: Any, study_id: int) -> list[dict[str, Any]]:
    """The validation ``metrics`` of every COMPLETE trial of the study, in one SQL query (the
    deflated Sharpe ratio needs every trial's Sharpe; loading the trials would take seconds)."""
    import json

    from sqlalchemy import text

    with storage.engine.connect() as connection:
        blobs = connection.execute(text(
            "SELECT a.value_json FROM trial_user_attributes a JOIN trials t "
            "ON t.trial_id = a.trial_id WHERE t.study_id = :sid AND t.state = 'COMPLETE' "
            "AND a.key = :key"), {"sid": study_id, "key": ATTR_METRICS}).scalars().all()
    return [m for m in map(json.loads, blobs) if isinstance(m, dict)]


def tried_attrs(storage: Any, study_id: int, key: str) -> list[Any]:
    """The user attribute ``key`` of every configuration the study tried to the end or to a
    pruning (COMPLETE and PRUNED trials), in one SQL query."""
    import json

    from sqlalchemy import text

    with storage.engine.connect() as connection:
        blobs = connection.execute(text(
            "SELECT a.value_json FROM trial_user_attributes a JOIN trials t "
            "ON t.trial_id = a.trial_id WHERE t.study_id = :sid "
            "AND t.state IN ('COMPLETE', 'PRUNED') AND a.key = :key ORDER BY t.number"),
            {"sid": study_id, "key": key}).scalars().all()
    return [json.loads(blob) for blob in blobs]


def replace_finished_trial_attr(url: str, trial_id: int, key: str, value: Any) -> None:
    """Set the user attribute ``key`` of a finished trial, replacing its earlier value.

    Optuna refuses to change a finished trial through its API, so this writes the attribute
    row in Optuna's schema directly, in one transaction."""
    import json

    from sqlalchemy import text

    from search.study.storage import open_storage

    storage = open_storage(url)
    try:
        with storage.engine.begin() as connection:
            connection.execute(text("DELETE FROM trial_user_attributes WHERE trial_id = :tid "
                                    "AND key = :key"), {"tid": trial_id, "key": key})
            connection.execute(text("INSERT INTO trial_user_attributes (trial_id, key, "
                                    "value_json) VALUES (:tid, :key, :value)"),
                               {"tid": trial_id, "key": key,
                                "value": json.dumps(value, default=str)})
    finally:
        storage.engine.dispose()
