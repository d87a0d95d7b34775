"""Create studies strictly, load them strictly, and keep their provenance.

``launch`` creates (refusing an existing name), everything else loads (refusing a missing name
and suggesting close ones): a read never creates an empty study by accident.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from search.errors import StudyError, both, did_you_mean
from search.study.schema import (
    ATTR_COMMAND,
    ATTR_CONFIG,
    ATTR_CREATED,
    ATTR_DATA,
    ATTR_RESULTS,
    ATTR_UID,
    ATTR_SPACE,
    ATTR_VERSIONS,
)
from search.study.storage import redact, relative_to_results, results_dir
from search.versions import package_versions


def _where(storage: Any) -> str:
    """The storage's redacted URL (Optuna may wrap our storage in a cache)."""
    backend = getattr(storage, "_backend", storage)
    return getattr(backend, "display_url", None) or "the study storage"


def study_names(storage: Any) -> list[str]:
    """The names of the storage's studies (without reading their trials)."""
    return [s.study_name for s in sorted(storage.get_all_studies(), key=lambda s: s._study_id)]


def load_study(storage: Any, name: str, sampler: Any = None):
    """Load an existing study or raise ``StudyError`` naming close matches."""
    import optuna

    try:
        return optuna.load_study(study_name=name, storage=storage, sampler=sampler)
    except KeyError:
        names = study_names(storage)
        hint = did_you_mean(name, names, n=3, cutoff=0.5)
        listing = "" if hint else (f" (studies there: {', '.join(names[:10])})" if names
                                    else " (that storage has no studies yet)")
        raise StudyError(f"no study named {name!r} in {_where(storage)}{hint}{listing}") from None


def create_study(storage: Any, config: dict[str, Any], space: Any, data_fingerprint: str,
                 command: str = "", uid: str | None = None, folder: Path | None = None):
    """Create the study for a new sweep and record its provenance; refuse an existing name.
    ``uid`` and ``folder``: its id and the results folder claimed for it
    (``search/study/folders.py``); without them, none and ``$TRADETUNE_RESULTS/NAME``."""
    import optuna

    from trainables import metrics as M

    name = config["study"]
    directions = [M.objective_direction(n) for n in objective_names(config)]
    try:
        study = optuna.create_study(study_name=name, storage=storage, directions=directions)
    except optuna.exceptions.DuplicatedStudyError:
        raise name_taken(storage, name) from None
    saved = {**config, "storage": redact(config["storage"]) if config.get("storage") else None}
    study.set_user_attr(ATTR_CONFIG, saved)
    study.set_user_attr(ATTR_SPACE, {"algorithm": space.algorithm,
                                     "fingerprint": space.fingerprint,
                                     "ranges": space.description})
    study.set_user_attr(ATTR_DATA, data_fingerprint)
    study.set_user_attr(ATTR_VERSIONS, package_versions())
    study.set_user_attr(ATTR_COMMAND, redact(command or " ".join(sys.argv)))
    study.set_user_attr(ATTR_CREATED, time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    study.set_user_attr(ATTR_RESULTS, relative_to_results(folder or results_dir() / name))
    if uid is not None:
        study.set_user_attr(ATTR_UID, uid)
    return study


def check_name_free(storage: Any, name: str) -> None:
    """Refuse, as ``create_study`` would, a name the storage already has (``launch --dry-run``)."""
    if name in study_names(storage):
        raise name_taken(storage, name)


def name_taken(storage: Any, name: str) -> StudyError:
    """The error for launching under the name of an existing study."""
    return StudyError(f"study {name!r} already exists in {_where(storage)}; continue it with "
                      f"`{next_command('resume', name)}`, launch under a new name with "
                      f"{both('--study NAME', 'study=NAME')}, or remove it with "
                      f"`{next_command('delete', name)}` "
                      f"(`{both('tradetune studies', 'tradetune.studies()')}` lists studies)")


def next_command(command: str, study: str, url: str | None = None) -> str:
    """What to run next on ``study`` (``resume``, ``best`` or ``delete``), in both wordings
    (``trainables.errors.both``): ``tradetune resume --study s --storage '...'`` for the
    command line, ``tradetune.resume('s', storage='...')`` for Python. ``url`` is named only
    when it is not the default storage, its password masked."""
    from search.study.storage import resolve_url

    shown = redact(url) if url is not None and url != resolve_url() else None
    flag = f" --storage '{shown}'" if shown else ""
    where = f", storage={shown!r}" if shown else ""
    python = {"resume": f"tradetune.resume({study!r}{where})",
              "best": f"tradetune.open_study({study!r}{where}).best()",
              "delete": f"tradetune.open_study({study!r}{where}).delete()"}[command]
    return both(f"tradetune {command} --study {study}{flag}", python)


def objective_names(config: dict[str, Any]) -> list[str]:
    """The study's objectives in Optuna's order: ``training.objectives``, or the one
    ``training.objective``."""
    training = config.get("training") or {}
    return list(training.get("objectives") or [training.get("objective", "sharpe")])


def stored_config(study: Any) -> dict[str, Any]:
    """The effective sweep config a study was launched with."""
    config = study.user_attrs.get(ATTR_CONFIG)
    if not config:
        raise StudyError(f"study {study.study_name!r} was not created by tradetune (it has no "
                         "stored sweep config)")
    return config


def space_change(study: Any, space: Any) -> str | None:
    """How ``space`` differs from the space the study was launched with (the first changed
    ranges, or "its code changed"); None if it does not."""
    saved_space = study.user_attrs.get(ATTR_SPACE, {})
    if saved_space.get("fingerprint") == space.fingerprint:
        return None
    before, now = saved_space.get("ranges", {}), space.description
    changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
    return "; ".join(f"{k}: {before.get(k, 'absent')} -> {now.get(k, 'absent')}"
                     for k in changed[:3]) or "its code changed"


def check_unchanged(study: Any, space: Any, data_fingerprint: str) -> None:
    """Refuse to resume when the search space or the data differ from launch time."""
    detail = space_change(study, space)
    if detail:
        raise StudyError(f"the search space of study {study.study_name!r} changed since launch "
                         f"({detail}); launch a new study for the new space")
    saved_data = study.user_attrs.get(ATTR_DATA)
    if saved_data != data_fingerprint:
        raise StudyError(f"the data of study {study.study_name!r} changed since launch "
                         f"(fingerprint {saved_data} -> {data_fingerprint}); launch a new study "
                         "to use the new data")


def data_fingerprint(data_config: dict[str, Any]) -> str:
    """Hash of the market data a sweep trains on: the file's bytes, or the synthetic seed."""
    digest = hashlib.sha256(json.dumps(
        {k: v for k, v in (data_config or {}).items() if k != "path"},
        sort_keys=True, default=str).encode())
    path = (data_config or {}).get("path")
    if path:
        with Path(path).open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]
