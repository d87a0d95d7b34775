"""Study management: list the studies of a storage, delete one with its results folder.

Like the query commands, these never start Ray and never import ray, torch or pandas.
"""
from __future__ import annotations

import shutil
from typing import Any, Callable

from search.errors import StudyError, UserError
from search.study import folders, studies
from search.study.schema import (
    ATTR_CONFIG,
    ATTR_CREATED,
    HEARTBEAT_PREFIX,
)
from search.study.storage import open_existing, redact
from search.study.trials import first_value, state_counts, top_trials


def data_source(data: dict[str, Any] | None) -> str:
    """A study's market data in a few words: the CSV's path, or the synthetic market."""
    data = data or {}
    if data.get("path"):
        return str(data["path"])
    synthetic = data.get("synthetic") or {}
    details = ", ".join(f"{k} {v}" for k, v in synthetic.items())
    return f"synthetic ({details})" if details else "synthetic (default)"


def list_studies(url: str) -> list[dict[str, Any]]:
    """One row per study of the storage: name, creation time, algorithm, data source, trial
    counts by state and the best trial. Two small SQL queries per study: a study's trials are
    never all loaded."""
    storage = open_existing(url)
    rows = []
    for frozen in sorted(storage.get_all_studies(), key=lambda s: s._study_id):  # oldest first
        config = frozen.user_attrs.get(ATTR_CONFIG) or {}
        counts = state_counts(storage, frozen._study_id)
        top = top_trials(storage, frozen._study_id, 1)
        rows.append({
            "study": frozen.study_name,
            "created": frozen.user_attrs.get(ATTR_CREATED),
            "algorithm": config.get("algorithm"),
            "data": data_source(config.get("data")) if config else None,
            "trials": sum(counts.values()),
            "counts": counts,
            "best_value": first_value(top[0]) if top else None,
            "best_trial": top[0].number if top else None,
        })
    return rows


def _running_driver(study: Any) -> str | None:
    """The id of a driver that is still running a sweep of ``study``, if any."""
    from search.study.trials import driver_alive

    for key, beat in study.user_attrs.items():
        if key.startswith(HEARTBEAT_PREFIX) and isinstance(beat, dict) and driver_alive(beat):
            return key[len(HEARTBEAT_PREFIX):]
    return None


def delete_study(url: str, name: str, confirm: Callable[[str], bool]) -> dict[str, Any]:
    """Delete study ``name`` from the storage, then its results folder; nothing else.

    ``confirm(question)`` is asked once everything is checked and before anything is removed;
    if it returns False nothing is removed and ``UserError`` is raised. A study whose sweep is
    still running is refused (its driver would fail on the next write)."""
    storage = open_existing(url)
    study = studies.load_study(storage, name)
    driver = _running_driver(study)
    if driver is not None and any(t.state.name == "RUNNING"
                                  for t in study.get_trials(deepcopy=False)):
        raise StudyError(f"study {name!r} is being run by driver {driver}; stop that sweep "
                         "(Ctrl-C) before deleting the study")
    folder, kept = folders.removable(study)
    counts = state_counts(storage, study._study_id)
    trials = sum(counts.values())
    has_folder = kept is None
    question = (f"delete study {name!r} ({trials} trials) from {redact(url)}"
                + (f" and its results folder {folder}" if has_folder else "") + "?")
    if not confirm(question):
        raise UserError(f"study {name!r} not deleted")
    storage.delete_study(study._study_id)
    if has_folder:
        try:
            shutil.rmtree(folder)
        except OSError as exc:
            raise UserError(f"study {name!r} was deleted from {redact(url)}, but its results "
                            f"folder {folder} could not be removed ({exc.strerror or exc}); "
                            "remove it by hand") from None
    return {"study": name, "trials": trials, "storage": redact(url),
            "results_folder": str(folder) if has_folder else None,
            "results_folder_kept": None if has_folder or not folder.exists()
            else f"{folder} ({kept})"}
