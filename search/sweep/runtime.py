"""One Tune run of a study's trials: the sampler, the scheduler, the Tuner and its settings, the
Ray session around it, and how the run ends (finished, stopped, or every trial failed).
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import signal
import socket
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from search.errors import StorageUnavailable, SweepFailed
from search.events import (
    COMPLETED,
    NOTHING_TO_RUN,
    STOPPED,
    ProgressCallback,
    ProgressEvent,
    SweepResult,
)
from search.scoped import env_defaults, logger_levels
from search.study import studies
from search.study.storage import redact
from search.study.trials import finish_interrupted, study_state_counts
from search.sweep.cluster import connect, trial_needs
from trainables import metrics as M

if TYPE_CHECKING:
    from search.sweep.stopping import StopSignals


def sweep_result(url: str, study: Any, reason: str, signum: int | None = None) -> SweepResult:
    """The result of a sweep of ``study``, with the study's figures read now."""
    from search.results.summaries import status

    figures = status(url, study.study_name)
    return SweepResult(study=study.study_name, storage=redact(url), reason=reason,
                       counts=figures["counts"], best_value=figures["best_value"],
                       best_trial=figures["best_trial"], signal=signum)


def sampler_seed(sweep_seed: int, n_trials: int) -> int:
    """A resumed sweep must not replay the random start-up samples of the first run."""
    return int(hashlib.sha256(f"{sweep_seed}/{n_trials}".encode()).hexdigest()[:8], 16)


def make_sampler(search: dict[str, Any], seed: int) -> Any:
    import optuna

    from search.config.sweep_config import startup_trials

    name, startup = search.get("sampler", "tpe"), startup_trials(search)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # search.constraints reach the samplers through each trial (``Trial.set_constraint``, set
    # by the searcher when a trial ends): Optuna 5's TPE and GP read them there.
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
    if name == "tpe_grouped":
        with warnings.catch_warnings():  # group is "experimental" in Optuna 5
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup,
                                              multivariate=True, group=True)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)


def tracking_enabled(config: dict[str, Any]) -> bool:
    """Whether the sweep tracks its trials (config ``tracking``, search/sweep/tracking.py)."""
    tracking = config.get("tracking") or {}  # studies launched before tracking have none
    return bool(tracking.get("mlflow") or tracking.get("tensorboard"))


def run_trials(config: dict[str, Any], study: Any, space: Any, experiment_dir: Path, url: str,
         stop: StopSignals, progress: ProgressCallback) -> SweepResult:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.stopper import CombinedStopper

    from search.sweep.progress import Progress
    from search.sweep.searcher import (
        StopWhenStorageLost,
        StudyBookkeeping,
        StudySearcher,
        storage_backend,
    )
    from search.sweep.stopping import StopOnSignal, StopRequested
    from trainables.rllib_trainable import train_trial

    search, training, resources = config["search"], config["training"], config["resources"]
    driver_id = f"{socket.gethostname()}-{os.getpid()}-{int(time.time())}"
    farewell = stop.last_words = Farewell(study, driver_id, url, progress)
    searcher = tracker = None
    ended_by: BaseException | None = None  # an error that ends the driver, not a stop
    try:
        sampler = make_sampler(search, sampler_seed(search["seed"], len(study.trials)))
        searcher = StudySearcher(space, study, sampler, search["num_samples"], search["seed"],
                                 driver_id, objectives=studies.objective_names(config),
                                 constraints=search.get("constraints"))
        bookkeeping = StudyBookkeeping(searcher, driver_id)
        bookkeeping.beat()
        remaining = max(searcher.budget_left(), 0)
        if remaining == 0:
            progress(ProgressEvent("nothing_to_run", (
                "the study's trial budget is taken by trials running in another driver; "
                "nothing to start here")))
            return sweep_result(url, study, NOTHING_TO_RUN)
        scheduler = None
        if search["scheduler"] == "asha":
            # A run validates every eval_every iterations and once more at its last iteration.
            max_evals = math.ceil(training["max_iterations"] / training["eval_every"])
            scheduler = ASHAScheduler(time_attr=M.EVALS, max_t=max_evals,
                                      grace_period=max(1, min(training["min_evals"], max_evals)))
        elif search["scheduler"] == "racing":
            from search.sweep.racing import racing_scheduler

            scheduler = racing_scheduler(searcher, search)
        # Trials never touch the study: they get the sweep config without its storage URL.
        trainable = tune.with_resources(
            tune.with_parameters(train_trial, sweep={**config, "storage": None}),
            {"cpu": resources["cpus_per_trial"], "gpu": resources["gpus_per_trial"]})
        progress_line = Progress(study, search["num_samples"], progress,
                                 score_name=f"validation {training['objective']}",
                                 needs=trial_needs(config))
        run_name = f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        callbacks = [bookkeeping, progress_line]
        if tracking_enabled(config):  # off, neither MLflow nor tensorboardX is imported
            from search.sweep.tracking import Tracking

            tracker = Tracking(config, study, searcher, experiment_dir, progress)
            callbacks.append(tracker)
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                metric=M.SEARCH_METRIC, mode=M.SEARCH_MODE, num_samples=remaining,
                search_alg=searcher, scheduler=scheduler,
                max_concurrent_trials=search["max_concurrent"],
                # One worker process per concurrent slot, reused: a new trial does not pay for
                # importing torch and RLlib again.
                reuse_actors=True),
            run_config=run_config(run_name, experiment_dir, training["max_failures"],
                                  callbacks,
                                  stop=CombinedStopper(StopWhenStorageLost(study),
                                                       StopOnSignal())),
        )
        # A stop signal ends Tune's loop between two steps (``StopOnSignal``).
        with quiet_tune(), stop.graceful():
            tuner.fit()
    except StopRequested:
        pass  # stop.received says which signal
    except BaseException as exc:
        if stop.received is None or not isinstance(exc, Exception):
            ended_by = exc  # e.g. the caller's progress callback raised inside Tune's loop
            raise
        # Sent to the whole process group (`timeout`, SLURM), the signal also stopped Ray's
        # own processes under Tune's feet: Tune's errors are part of that stop.
    finally:
        with stop.deferred(raise_after=False):  # a second signal still stops at once
            if searcher is not None:
                searcher.fail_all_awaiting()
            if tracker is not None:
                tracker.close(stopped=stop.received is not None or ended_by is not None)
            if ended_by is not None:
                # As a stop does: this driver's trials in flight become FAIL now, not at a
                # later `resume`. The error ending the driver is the one the caller sees.
                with contextlib.suppress(Exception):
                    finish_interrupted(study, driver_id, "sweep ended by an error in the "
                                       f"driver: {_one_line(ended_by)}")
    lost = getattr(storage_backend(study), "unavailable", None)
    if lost and stop.received is not None:  # stopped while the storage was being retried
        with stop.deferred(raise_after=False):
            farewell(stop.received)
        return SweepResult(study=study.study_name, storage=redact(url), reason=STOPPED,
                           signal=stop.received)
    if lost:
        raise StorageUnavailable(
            f"{lost}; the sweep stopped (finished trials are kept in the study). When the "
            f"database is back, continue with: "
            f"{studies.next_command('resume', study.study_name, url)}")
    cut = False
    if stop.received is None:
        with stop.deferred(raise_after=False):
            cut = finish_interrupted(study, driver_id)  # trials Tune left running
    if stop.received is not None or cut:
        with stop.deferred(raise_after=False):
            farewell(stop.received)
            return sweep_result(url, study, STOPPED, stop.received or signal.SIGINT)
    counts = study_state_counts(study)
    check_some_trial_completed(study, driver_id, url)
    progress(ProgressEvent("finished", (
        f"sweep finished: {counts['COMPLETE']} complete, {counts['FAIL']} failed, "
        f"{counts['PRUNED']} pruned. See: "
        f"{studies.next_command('best', study.study_name, url)}")))
    return sweep_result(url, study, COMPLETED)


def _one_line(exc: BaseException) -> str:
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return f"{type(exc).__name__}: {first[:200]}" if first else type(exc).__name__


class Farewell:
    """The end of an interrupted sweep, said once, by the main thread or by the stop watchdog
    (search/sweep/stopping.py) if the stop overran: this driver's trials in flight marked FAIL, one
    line with the resume command (through ``progress``), and the exit code 128 + signal (130
    for Ctrl-C)."""

    def __init__(self, study: Any, driver_id: str | None, url: str,
                 progress: ProgressCallback):
        self._study, self._driver_id, self._url = study, driver_id, url
        self._progress = progress
        self._lock = threading.Lock()
        self._said = False

    def __call__(self, signum: int | None) -> int:
        from search.sweep.stopping import signal_name

        if self._lock.acquire(timeout=5):
            try:
                if not self._said:
                    self._said = True
                    resume = studies.next_command("resume", self._study.study_name, self._url)
                    try:
                        if self._driver_id is not None:
                            finish_interrupted(self._study, self._driver_id)
                        done = "trials in flight were marked FAIL and will be re-run"
                    except StorageUnavailable as lost:
                        done = (f"{lost}, so trials in flight stay RUNNING until the resume "
                                "marks them FAIL")
                    self._progress(ProgressEvent("interrupted", (
                        f"sweep interrupted ({signal_name(signum)}); {done}. Continue "
                        f"with: {resume}")))
            finally:
                self._lock.release()
        return 128 + (signum or signal.SIGINT)


@contextlib.contextmanager
def ray_session(address: str | None, stop: StopSignals) -> Iterator[None]:
    """Connect to Ray (bounded wait, see search/sweep/cluster.py) for the block; shut down what
    this process started or joined. A stop signal during Ray's start-up stops cleanly too."""
    import ray

    from search.sweep.stopping import StopRequested

    mode = os.environ.get("RAY_AUTH_MODE")  # connect may switch it to the cluster's token mode
    try:
        connected = connect(address)
    except (SystemExit, KeyboardInterrupt) as exc:
        # A stop signal while Ray starts (ray.init's own SIGTERM handler raises SystemExit).
        stop.install()
        signum = exc.signum if isinstance(exc, StopRequested) else signal.SIGTERM
        stop.received = stop.received or signum
        with stop.deferred(raise_after=False):
            ray.shutdown()
        raise StopRequested(signum) from None
    stop.install()  # over Ray's SIGTERM handlers: Python's, and its core's stack dumper
    try:
        yield
    finally:
        if connected:
            with stop.deferred(raise_after=False):
                ray.shutdown()
        if os.environ.get("RAY_AUTH_MODE") != mode:
            os.environ.pop("RAY_AUTH_MODE", None)
            if mode is not None:
                os.environ["RAY_AUTH_MODE"] = mode


# Failure reasons (``Type: message``, see ``searcher.error_line``) that come from the stored
# config: ``resume`` reruns that config, so it cannot get past them.
CONFIG_FAILURES = ("ConfigError", "SpaceError", "DataError")


def check_some_trial_completed(study: Any, driver_id: str, url: str) -> None:
    """A sweep whose trials all failed is a failure, not a finished sweep: raise
    ``SweepFailed`` naming the most common reason, as the study stores it. The failed count is
    the study's, as the progress line counts it (every driver and every earlier run), with
    this run's share where they differ. ``resume`` reruns the stored config, so where the
    reasons come from the config it is not offered as the way on."""
    import collections

    from search.study.schema import ATTR_DRIVER, ATTR_FAIL

    every = study.get_trials(deepcopy=False)
    mine = [t for t in every if t.user_attrs.get(ATTR_DRIVER) == driver_id]
    if not mine or any(t.state.name in ("COMPLETE", "PRUNED") for t in mine):
        return
    failed = [t for t in mine if t.state.name == "FAIL"]
    in_study = sum(t.state.name == "FAIL" for t in every)
    reasons = collections.Counter(t.user_attrs.get(ATTR_FAIL) or "no reason recorded"
                                  for t in failed)
    reason, count = reasons.most_common(1)[0] if reasons else ("no reason recorded", 0)
    how = "with" if count == len(failed) else f"most often ({count} of them) with"
    counted = (f"{in_study} failed" if in_study == len(failed)
               else f"{in_study} failed in the study, {len(failed)} of them in this run")
    name = study.study_name
    earlier = {t.user_attrs.get(ATTR_FAIL) for t in every
               if t.state.name == "FAIL" and t.user_attrs.get(ATTR_DRIVER) != driver_id}
    never_completed = not any(t.state.name in ("COMPLETE", "PRUNED") for t in every)
    from_config = reasons and (
        all(r.split(":")[0].strip() in CONFIG_FAILURES for r in reasons)
        or (never_completed and set(reasons) <= earlier))  # a resume failed the same way
    if from_config:
        raise SweepFailed(
            f"no trial completed: {counted}, {how}: {reason}; the cause is in the study's "
            "config, which resume runs again unchanged: fix the config and launch a new study "
            f"(free the name with {studies.next_command('delete', name, url)})")
    raise SweepFailed(f"no trial completed: {counted}, {how}: {reason}; fix the cause (the Ray "
                      "worker logs named above have the details), then continue with: "
                      f"{studies.next_command('resume', name, url)} (if the cause is a value "
                      "of the config, resume would run it again: launch a new study instead)")


def run_config(name: str, experiment_dir: Path, max_failures: int, callbacks: list,
               stop: Any = None) -> Any:
    """Tune's run settings for trials of a study (sweeps and promotions alike): one kept
    checkpoint per trial, the one with the best validation score; Tune's JSON and CSV logs.
    Tune's own progress report stays silent (``verbose=0``); it is given as the plain-text one
    because in a notebook Tune's default one clears the cell's output (the sweep's own lines)
    when it starts."""
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    return tune.RunConfig(
        name=name, storage_path=str(experiment_dir.resolve()), verbose=0,
        progress_reporter=tune.CLIReporter(),
        checkpoint_config=tune.CheckpointConfig(
            num_to_keep=1, checkpoint_score_attribute=M.BEST_VAL_SCORE,
            checkpoint_score_order="max"),
        failure_config=tune.FailureConfig(max_failures=max_failures),
        stop=stop, callbacks=[*callbacks, JsonLoggerCallback(), CSVLoggerCallback()])


def say_ray_logs(progress: ProgressCallback) -> None:
    """Say where Ray keeps this run's logs: a trial's worker output is only there."""
    import ray

    if not ray.is_initialized():
        return
    try:  # Ray has no public API for the session directory
        session = ray._private.worker._global_node.get_session_dir_path()
    except AttributeError:
        return
    progress(ProgressEvent("ray_logs", f"Ray worker logs: {session}/logs"))


def quiet_tune() -> contextlib.AbstractContextManager[None]:
    """A block for one ``Tuner.fit``, its settings put back afterwards.

    Tune's per-failure tracebacks and snapshot warnings drown the progress line; failures are
    printed as one line by ``Progress`` and their reason is stored on the study's trial.
    TUNE_DISABLE_AUTO_CALLBACK_LOGGERS: Tune's default loggers include TensorBoard's, whose
    import loads torch in the driver (about 2 s per sweep); the sweep passes the JSON and CSV
    loggers itself. TUNE_DISABLE_SIGINT_HANDLER: Tune's own SIGINT handler would take Ctrl-C
    alone; ours takes Ctrl-C, SIGTERM and SIGHUP alike (``search/sweep/stopping.py``). A
    variable the user set is left as it is."""
    block = contextlib.ExitStack()
    block.enter_context(env_defaults({
        "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
        "RAY_AIR_NEW_OUTPUT": "0",  # its start-up box ignores verbose=0
        "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
        "TUNE_DISABLE_SIGINT_HANDLER": "1"}))
    block.enter_context(logger_levels(
        {name: logging.CRITICAL for name in ("ray.tune", "ray.train", "ray.rllib")}))
    return block