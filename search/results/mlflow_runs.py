"""MLflow, the optional tracking store (config ``tracking.mlflow``; ``pip install
"tradetune[mlflow]"``): where a study's runs go, and a client that fails fast.

The sweep logs a study as a parent run and each trial as a nested child run
(``search/sweep/tracking.py``); ``export`` adds its bundle to the trial's run. Both go through
this module. MLflow is imported here only, and only when a study is tracked: a query (``best``,
``status``) never loads it.

A tracking server that is down must never hold up or fail a sweep, so every call is made with
MLflow's HTTP retries cut short (``bounded``): MLflow's own defaults retry a dead server for
minutes.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from search.errors import ConfigError
from search.scoped import env_defaults
from search.study.storage import redact

INSTALL = 'pip install "tradetune[mlflow]"'
# MLflow 3's default store when MLFLOW_TRACKING_URI is not set: a SQLite file in the working
# directory. Made absolute here, so every trial of the study (and `export`) finds one place.
DEFAULT_DB = "mlflow.db"
# Env variables MLflow reads at each request: one try, a short timeout (the user's own
# settings win, see ``bounded``). MLFLOW_CONFIGURE_LOGGING, read when mlflow is first imported
# (always inside this block): MLflow would give its logger a handler of its own and print
# INFO lines (its database set-up) where the library prints nothing.
FAIL_FAST = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
             "MLFLOW_CONFIGURE_LOGGING": "false"}
# Tags on runs (MLflow's own parent-run tag links a child to its parent in the UI).
PARENT_TAG = "mlflow.parentRunId"
STUDY_TAG = "tradetune.study"
STUDY_UID_TAG = "tradetune.study_uid"
TRIAL_TAG = "tradetune.trial"
STOP_TAG = "stop_reason"


def tracking_uri(tracking: dict[str, Any] | None) -> str:
    """The tracking URI a study logs to: ``tracking.mlflow_uri``, else ``$MLFLOW_TRACKING_URI``
    (as MLflow users expect), else MLflow's default, ``sqlite:///`` + ./mlflow.db made
    absolute."""
    given = (tracking or {}).get("mlflow_uri") or os.environ.get("MLFLOW_TRACKING_URI")
    if given:
        return given
    return f"sqlite:///{Path(DEFAULT_DB).resolve()}"


def experiment_name(tracking: dict[str, Any] | None, study: str) -> str:
    return (tracking or {}).get("mlflow_experiment") or study


def check_installed() -> None:
    """One line, before anything is created, when the config turns MLflow on without it."""
    if importlib.util.find_spec("mlflow") is None:
        raise ConfigError(f"tracking.mlflow is true but MLflow is not installed: {INSTALL} "
                          "(or set tracking.mlflow=false)")


@contextlib.contextmanager
def bounded() -> Iterator[None]:
    """A block in which MLflow gives up on an unreachable server at once."""
    with env_defaults(FAIL_FAST):
        yield


def client(uri: str) -> Any:
    """An ``MlflowClient`` bound to ``uri``: no process-wide MLflow state (active run, global
    tracking URI) is set, so a notebook's own MLflow use is left as it was."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def artifact_root(uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: beside a local SQLite store, ``mlruns/``
    next to the database file (MLflow's own default is ``./mlruns`` of whatever directory the
    sweep runs in, which `export` from elsewhere would not find); a server decides itself."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri[len(prefix):] in ("", ":memory:"):
        return None
    return (Path(uri[len(prefix):]).resolve().parent / "mlruns").as_uri()


def experiment_id(mlflow: Any, name: str, uri: str) -> str:
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            mlflow.restore_experiment(found.experiment_id)
        return found.experiment_id
    return mlflow.create_experiment(name, artifact_location=artifact_root(uri))


def one_line(exc: BaseException) -> str:
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return redact(f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__)


def log_export(tracked: dict[str, Any], tracking: dict[str, Any] | None,
               folder: Path, names: list[str]) -> dict[str, Any]:
    """Log an export's files ``names`` in ``folder`` to the trial's run as artifacts under
    ``export/`` (the checkpoint is not sent twice: the sweep logged it as ``checkpoint/``,
    and only the export's own names go, never other files of the folder); returns what
    happened (``run_id``, ``uri``, ``logged``, and a ``note`` when it could not). A store
    that is down or lost the run costs the export nothing but the note. The URI is the one the
    sweep logged to, as stored on the trial; one stored with its password masked is taken from
    the config or ``MLFLOW_TRACKING_URI`` when it names the same store (never another one, so
    no store is created where the sweep had none)."""
    stored = tracked.get("uri")
    masked = not isinstance(stored, str) or ":***@" in stored  # redact()'s mask
    # The password is not stored: then the config's or the environment's URI, if the same store.
    uri = tracking_uri(tracking) if masked else stored
    said = {"run_id": tracked.get("run_id"), "uri": redact(uri), "logged": False, "note": None}
    if isinstance(stored, str) and redact(uri) != stored:
        said["note"] = (f"the export was not logged to MLflow run {tracked.get('run_id')}: the "
                        f"sweep logged to {stored}; set MLFLOW_TRACKING_URI to that store "
                        "(with its password) and export again")
        return said
    if importlib.util.find_spec("mlflow") is None:
        said["note"] = f"the trial's MLflow run was not given the export: {INSTALL}"
        return said
    try:
        with bounded():
            mlflow = client(uri)
            mlflow.get_run(tracked["run_id"])  # a run the store lost: said, not half-logged
            for name in names:
                path = folder / name
                if name == "checkpoint" or not path.exists():
                    continue
                if path.is_dir():
                    mlflow.log_artifacts(tracked["run_id"], str(path), f"export/{name}")
                else:
                    mlflow.log_artifact(tracked["run_id"], str(path), "export")
        said["logged"] = True
    except Exception as exc:  # noqa: BLE001 - tracking never fails the command
        said["note"] = (f"the export was not logged to MLflow run {tracked.get('run_id')} at "
                        f"{redact(uri)}: {one_line(exc)}")
    return said
