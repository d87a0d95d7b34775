"""Experiment tracking of a sweep (config ``tracking``), written by the driver from Tune's
results: MLflow runs and TensorBoard event files. Off by default; when off the sweep never
builds this callback and neither library is imported.

MLflow (``tracking.mlflow``, ``search/results/mlflow_runs.py``): the study is a parent run
(its effective config as parameters; a resumed study goes on in the same run), each trial a
nested child run holding its parameters, every validation evaluation's metrics with the
trial's training iteration as the step, its stop reason (tag ``stop_reason``) and its kept
checkpoint as an artifact (``checkpoint/``). The trial's run id is stored on the Optuna trial
(``schema.ATTR_MLFLOW_RUN``), so ``export`` can add its bundle to the same run.

TensorBoard (``tracking.tensorboard``): one event-file folder per trial under the study's
folder, ``tensorboard/trial-NNNN``, written with tensorboardX (no TensorFlow; it loads torch).

Tracking never fails a sweep: a store that cannot be reached when the sweep starts, or that
fails later, is said once (a ``note`` event) and the sweep goes on without it.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

from ray.tune.callback import Callback

from search.events import ProgressCallback, ProgressEvent
from search.results import mlflow_runs
from search.study.schema import ATTR_MLFLOW_RUN, ATTR_MLFLOW_STUDY_RUN, ATTR_UID
from search.study.storage import redact
from trainables import metrics as M

log = logging.getLogger(__name__)

TENSORBOARD_DIR = "tensorboard"
# Training figures logged beside the validation ones at each evaluation.
TRAINING_METRICS = (M.EPISODE_RETURN, M.TRAIN_PNL_PCT, M.ENV_STEPS)
MAX_PARAM = 6000  # MLflow's longest parameter value


def evaluation_metrics(result: dict[str, Any]) -> dict[str, float]:
    """One evaluation's figures from a Tune result: every finite validation number (``val_*``,
    the score included) and the training figures beside them."""
    found = {key: value for key, value in result.items()
             if key.startswith(M.VAL_PREFIX) or key in TRAINING_METRICS}
    return {key: float(value) for key, value in found.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value)}


def flat_params(mapping: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested mapping as MLflow parameters: dotted keys, values as text (JSON for lists)."""
    flat: dict[str, str] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flat_params(value, f"{name}."))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            flat[name] = text[:MAX_PARAM]
    return flat


class Tracking(Callback):
    """Driver-side Tune callback: each trial's results to MLflow and TensorBoard."""

    def __init__(self, config: dict[str, Any], study: Any, searcher: Any, experiment_dir: Path,
                 say: ProgressCallback):
        self._tracking = config.get("tracking") or {}
        self._config, self._study, self._searcher, self._say = config, study, searcher, say
        self._tensorboard_dir = experiment_dir / TENSORBOARD_DIR
        self._mlflow: Any = None  # the client while MLflow tracking works
        self._uri = ""
        self._experiment = self._parent = None
        self._runs: dict[str, str] = {}        # Tune trial id -> MLflow run id
        self._writers: dict[str, Any] = {}     # Tune trial id -> tensorboardX SummaryWriter
        self._checkpoints: dict[str, str] = {}  # Tune trial id -> latest (the kept) checkpoint
        self._tensorboard = bool(self._tracking.get("tensorboard"))
        self._closed = False
        if self._tracking.get("mlflow"):
            self._start_mlflow()

    # -- MLflow ------------------------------------------------------------------------------
    def _start_mlflow(self) -> None:
        """The experiment and the study's parent run (the one of an earlier run of this study
        when the store still has it); a store that does not answer turns MLflow off."""
        self._uri = mlflow_runs.tracking_uri(self._tracking)
        name = self._study.study_name
        try:
            with mlflow_runs.bounded():
                client = mlflow_runs.client(self._uri)
                self._experiment = mlflow_runs.experiment_id(
                    client, mlflow_runs.experiment_name(self._tracking, name), self._uri)
                earlier = self._study.user_attrs.get(ATTR_MLFLOW_STUDY_RUN) or {}
                self._parent = self._earlier_run(client, earlier.get("run_id"))
                if self._parent is None:
                    run = client.create_run(self._experiment, run_name=name, tags={
                        mlflow_runs.STUDY_TAG: name,
                        mlflow_runs.STUDY_UID_TAG: str(self._study.user_attrs.get(
                            ATTR_UID, ""))})
                    self._parent = run.info.run_id
                    self._log_params(client, self._parent, flat_params(
                        {key: value for key, value in self._config.items() if key != "storage"}))
                else:
                    client.update_run(self._parent, status="RUNNING")
        except Exception as exc:  # noqa: BLE001 - tracking never fails a sweep
            self._give_up("could not start", exc)
            return
        self._mlflow = client
        try:  # so a resumed sweep goes on in the same parent run
            self._study.set_user_attr(ATTR_MLFLOW_STUDY_RUN,
                                      {"uri": redact(self._uri), "run_id": self._parent})
        except Exception as exc:  # noqa: BLE001 - the storage's own troubles are said elsewhere
            log.warning("could not record the study's MLflow run: %s", exc)
        self._say(ProgressEvent("tracking", (
            f"MLflow: study {name!r} is run {self._parent} of experiment "
            f"{mlflow_runs.experiment_name(self._tracking, name)!r} at {redact(self._uri)}")))

    def _earlier_run(self, client: Any, run_id: str | None) -> str | None:
        if not run_id:
            return None
        try:
            run = client.get_run(run_id)
        except Exception:  # noqa: BLE001 - another store, or the run was deleted
            return None
        fits = (run.info.experiment_id == self._experiment
                and run.info.lifecycle_stage == "active")
        return run_id if fits else None

    def _give_up(self, what: str, exc: BaseException) -> None:
        """Say once that MLflow tracking stopped, and go on without it."""
        self._mlflow = None
        self._say(ProgressEvent("note", (
            f"MLflow tracking at {redact(self._uri)} {what} ({mlflow_runs.one_line(exc)}); "
            "the sweep goes on without MLflow tracking")))

    def _call(self, what: str, do: Any) -> Any:
        if self._mlflow is None:
            return None
        try:
            with mlflow_runs.bounded():
                return do(self._mlflow)
        except Exception as exc:  # noqa: BLE001 - tracking never fails a sweep
            self._give_up(f"failed to {what}", exc)
            return None

    @staticmethod
    def _log_params(client: Any, run_id: str, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(key, value) for key, value in params.items()]
        for start in range(0, len(items), 100):  # MLflow takes 100 parameters per batch
            client.log_batch(run_id, params=items[start:start + 100])

    def _child(self, trial: Any) -> str | None:
        """The trial's nested run, created on first sight (also for a trial restored by a
        resumed sweep), its id stored on the Optuna trial."""
        run_id = self._runs.get(trial.trial_id)
        if run_id is not None or self._mlflow is None:
            return run_id
        number = self._searcher.trial_number(trial.trial_id)
        params = self._searcher.trial_params(trial.trial_id) or {}

        def create(client: Any) -> str:
            run = client.create_run(
                self._experiment, run_name=f"trial-{number}",
                tags={mlflow_runs.PARENT_TAG: self._parent,
                      mlflow_runs.STUDY_TAG: self._study.study_name,
                      mlflow_runs.TRIAL_TAG: str(number), "tune_trial_id": trial.trial_id})
            self._log_params(client, run.info.run_id, flat_params(params))
            return run.info.run_id

        run_id = self._call(f"create the run of trial {number}", create)
        if run_id is not None:
            self._runs[trial.trial_id] = run_id
            self._searcher.record(trial.trial_id, ATTR_MLFLOW_RUN,
                                  {"uri": redact(self._uri), "run_id": run_id})
        return run_id

    def _log_metrics(self, run_id: str, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(key, value, now, step) for key, value in metrics.items()]
        self._call("log metrics", lambda c: c.log_batch(run_id, metrics=batch))

    def _finish(self, trial: Any, result: dict | None, status: str, reason: str) -> None:
        run_id = self._child(trial)
        if run_id is None:
            return
        kept = self._checkpoints.get(trial.trial_id)

        # The kept checkpoint's validation figures (``best_val_*``), at the trial's last step.
        final = {key: float(value) for key, value in (result or {}).items()
                 if key.startswith(M.BEST_PREFIX) and isinstance(value, (int, float))
                 and not isinstance(value, bool) and math.isfinite(value)}
        step = int((result or {}).get(M.ITERATIONS) or 0)

        def finish(client: Any) -> None:
            from mlflow.entities import Metric

            client.set_tag(run_id, mlflow_runs.STOP_TAG, reason)
            if final:
                now = int(time.time() * 1000)
                client.log_batch(run_id, metrics=[Metric(key, value, now, step)
                                                  for key, value in final.items()])
            if kept and Path(kept).is_dir():
                client.log_artifacts(run_id, kept, artifact_path="checkpoint")
            client.set_terminated(run_id, status)

        self._call(f"finish the run of trial {self._searcher.trial_number(trial.trial_id)}",
                   finish)

    # -- TensorBoard -------------------------------------------------------------------------
    def _writer(self, trial: Any) -> Any:
        writer = self._writers.get(trial.trial_id)
        if writer is not None or not self._tensorboard:
            return writer
        try:
            from tensorboardX import SummaryWriter

            number = self._searcher.trial_number(trial.trial_id)
            folder = self._tensorboard_dir / (f"trial-{number:04d}" if number is not None
                                              else f"tune-{trial.trial_id}")
            writer = self._writers[trial.trial_id] = SummaryWriter(str(folder))
        except Exception as exc:  # noqa: BLE001 - tracking never fails a sweep
            self._tensorboard = False
            self._say(ProgressEvent("note", (
                f"TensorBoard event files cannot be written under {self._tensorboard_dir} "
                f"({mlflow_runs.one_line(exc)}); the sweep goes on without them")))
        return writer

    def _close_writer(self, trial: Any) -> None:
        writer = self._writers.pop(trial.trial_id, None)
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()

    # -- Tune's callbacks --------------------------------------------------------------------
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info) -> None:
        self._child(trial)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info) -> None:
        if result.get(M.VAL_SCORE) is None:
            return
        metrics = evaluation_metrics(result)
        step = int(result.get(M.ITERATIONS) or result.get("training_iteration") or 0)
        run_id = self._child(trial)
        if run_id is not None and metrics:
            self._log_metrics(run_id, metrics, step)
        writer = self._writer(trial)
        if writer is not None:
            try:
                for key, value in metrics.items():
                    writer.add_scalar(key, value, step)
                writer.flush()
            except Exception as exc:  # noqa: BLE001
                self._close_writer(trial)
                self._tensorboard = False
                self._say(ProgressEvent("note", (
                    f"TensorBoard event files stopped ({mlflow_runs.one_line(exc)}); the "
                    "sweep goes on without them")))

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any,
                      **info) -> None:
        self._checkpoints[trial.trial_id] = checkpoint.path

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info) -> None:
        result = trial.last_result or {}
        self._finish(trial, result, "FINISHED", result.get(M.STOP_REASON) or "scheduler")
        self._close_writer(trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info) -> None:
        from search.sweep.searcher import error_line

        self._finish(trial, trial.last_result, "FAILED", f"failed: {error_line(trial)}")
        self._close_writer(trial)

    def close(self, stopped: bool) -> None:
        """At the end of the sweep (also a stopped or failed one): runs still open are ended
        (KILLED: the trial will be re-run by ``resume``), the study's run is ended, the event
        files are closed."""
        if self._closed:
            return
        self._closed = True
        for trial_id in list(self._writers):
            with contextlib.suppress(Exception):
                self._writers.pop(trial_id).close()
        if self._mlflow is None:
            return
        open_runs = list(self._runs.values())

        def end(client: Any) -> None:
            for run_id in open_runs:
                if client.get_run(run_id).info.status == "RUNNING":
                    client.set_terminated(run_id, "KILLED")
            client.set_terminated(self._parent, "KILLED" if stopped else "FINISHED")

        self._call("end the study's run", end)
