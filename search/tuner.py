"""Launch and resume sweeps: Ray Tune drives the trials, the Optuna study in SQL keeps the truth.

Resume does not unpickle Tune's experiment state (a database ahead of Tune's last snapshot
makes stock restores fail). It reconciles the study instead: trials left RUNNING by a dead
driver become FAIL, and a fresh Tune run on the same study runs only the remaining budget, so
the sampler sees every finished trial and nothing is counted twice.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import math
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from search.cluster import check_resources, connect, probe_address, ray_address, trial_needs
from search.claims import claim_lock
from search.errors import StorageUnavailable, SweepFailed, UserError
from search.storage import (check_url, open_existing, open_storage, redact, resolve_url,
                            results_dir, retry_seconds, sqlite_path)
from search import study as studies
from search.query import study_state_counts
from search.sweep_events import (COMPLETED, NOTHING_TO_RUN, STOPPED, ProgressCallback,
                                 ProgressEvent, SweepResult, no_progress)
from trainables import metrics as M

if TYPE_CHECKING:
    from search.stopping import StopSignals

__all__ = ["check_resources", "launch", "resume"]  # check_resources: for `launch --dry-run`

STALE_DRIVER_S = 60.0
MIN_FREE_MB = 100  # checkpoints of one small sweep take a few MB each (num_to_keep=1)


def launch(config: dict[str, Any], storage_url: str | None = None,
           address: str | None = None, command: str = "",
           progress: ProgressCallback = no_progress) -> SweepResult:
    """Create the study for ``config`` and run its sweep; say what happens through
    ``progress`` and return how it ended (raises ``UserError``s: see ``SweepResult``).

    Everything that can fail is checked before the study is created: the config, the data, the
    space, the storage URL, the results directory, the Ray cluster (bounded wait) and whether
    one trial fits on a node of it. A stop signal before the study exists leaves nothing."""
    from search.stopping import StopRequested, StopSignals
    from spaces import dry_run, get_space
    from trainables.market import prepare_market

    study, url = None, None
    with StopSignals() as stop, contextlib.ExitStack() as ray_session:
        stop.last_words = functools.partial(_stopped_before, command="launch",
                                            what=NOTHING_STORED, progress=progress)
        try:
            url = resolve_url(storage_url, config.get("storage"))
            prepare_market(config["data"])
            space = get_space(config["algorithm"], config["search"]["space_overrides"],
                              config["search"]["space"])
            dry_run(space, config)  # a custom space runs once here, before anything is created
            check_url(url, create_dirs=True)
            experiment_dir = _check_results_dir(config["study"])
            target = ray_address(address)
            if target not in (None, "auto"):
                probe_address(target)  # a wrong address fails in seconds, before the storage
            storage = _open_if_exists(url, config["study"])
            ray_session.enter_context(_ray_session(address, stop))
            check_resources(config, address)
            _say_ray_logs(progress)
            with stop.deferred():  # the study is created whole, or not at all
                storage = storage or open_storage(url, create_dirs=True,
                                                  retry_s=retry_seconds())
                study = studies.create_study(storage, config, space,
                                             studies.data_fingerprint(config["data"]), command)
                stop.last_words = _Farewell(study, None, url, progress)
                _experiment_dir(experiment_dir)
                if config["search"]["enqueue_tutorial"] and space.first_params:
                    study.enqueue_trial(space.first_params, skip_if_exists=True)
                for point in config["search"]["enqueue"]:
                    study.enqueue_trial(point, skip_if_exists=True)
                progress(ProgressEvent("launched", (
                    f"launched study {config['study']!r} in {redact(url)}: "
                    f"{config['algorithm']} x {config['search']['num_samples']} trials, "
                    f"results under {experiment_dir}")))
        except StopRequested as stopped:  # nothing stored, or the resume line
            return _stopped(stop, stopped.signum, url, config["study"], study)
        try:
            return _run(config, study, space, experiment_dir, url, stop, progress)
        except StopRequested as stopped:  # before _run took over its own stops
            return _stopped(stop, stopped.signum, url, config["study"], study)


def resume(study_name: str, storage_url: str | None = None, address: str | None = None,
           progress: ProgressCallback = no_progress) -> SweepResult:
    """Continue a study after a crash or interruption, running only its remaining budget.
    Nothing in the study changes until the Ray cluster answers and a trial fits on it. Says
    what happens through ``progress`` and returns how it ended, as ``launch``."""
    from search.stopping import StopRequested, StopSignals
    from spaces import dry_run, get_space
    from trainables.market import prepare_market

    study, url = None, None
    with StopSignals() as stop, contextlib.ExitStack() as ray_session:
        stop.last_words = functools.partial(_stopped_before, command="resume",
                                            what=NO_TRIAL_STARTED, progress=progress)
        try:
            target = ray_address(address)
            if target not in (None, "auto"):
                probe_address(target)  # before the storage is even opened
            url = resolve_url(storage_url)
            storage = open_existing(url, retry_s=retry_seconds())  # a missing study: nothing made
            study = studies.load_study(storage, study_name)
            config = studies.stored_config(study)
            if config.get("storage"):
                config["storage"] = None  # stored redacted; this run uses the URL it was given
            prepare_market(config["data"])
            space = get_space(config["algorithm"], config["search"]["space_overrides"],
                              config["search"]["space"])
            studies.check_unchanged(study, space, studies.data_fingerprint(config["data"]))
            dry_run(space, config)
            experiment_dir = _check_results_dir(study_name)
            budget = config["search"]["num_samples"]
            counts = study_state_counts(study)
            if counts["COMPLETE"] + counts["PRUNED"] < budget:
                ray_session.enter_context(_ray_session(address, stop))
                check_resources(config, address)
                _say_ray_logs(progress)
            with stop.deferred():
                experiment_dir = _experiment_dir(experiment_dir)
                with claim_lock(study):  # a trial being claimed is tagged before it is seen
                    orphans = fail_orphaned_trials(study)
                stop.last_words = _Farewell(study, None, url, progress)
            counts = study_state_counts(study)
            done = counts["COMPLETE"] + counts["PRUNED"]
            if done >= budget:
                progress(ProgressEvent("nothing_to_run", (
                    f"study {study_name!r} is already finished: {done} of {budget} trials "
                    "done; nothing to resume")))
                return _result(url, study, NOTHING_TO_RUN)
            progress(ProgressEvent("resuming", (
                f"resuming study {study_name!r}: {done} of {budget} trials done, {orphans} "
                f"orphaned trial(s) marked FAIL, {counts['RUNNING']} running elsewhere")))
        except StopRequested as stopped:
            return _stopped(stop, stopped.signum, url, study_name, study)
        try:
            return _run(config, study, space, experiment_dir, url, stop, progress)
        except StopRequested as stopped:  # before _run took over its own stops
            return _stopped(stop, stopped.signum, url, study_name, study)


def _stopped(stop: StopSignals, signum: int, url: str | None, study_name: str,
             study: Any) -> SweepResult:
    """A stop signal ended ``launch`` or ``resume`` outside Tune's loop: its last words (the
    study's bookkeeping and the line for the user), then the result."""
    stop.last_words(signum)
    if study is not None:
        return _result(url, study, STOPPED, signum)
    return SweepResult(study=study_name, storage=redact(url) if url else "", reason=STOPPED,
                       signal=signum)


def _result(url: str, study: Any, reason: str, signum: int | None = None) -> SweepResult:
    """The result of a sweep of ``study``, with the study's figures read now."""
    from search import query

    figures = query.status(url, study.study_name)
    return SweepResult(study=study.study_name, storage=redact(url), reason=reason,
                       counts=figures["counts"], best_value=figures["best_value"],
                       best_trial=figures["best_trial"], signal=signum)


def _open_if_exists(url: str, study_name: str) -> Any:
    """Open the study storage before Ray starts, to fail fast on a wrong URL, password or
    taken study name; but a SQLite file that does not exist yet is created only with the
    study (None then), so a sweep refused for its cluster leaves nothing behind."""
    path = sqlite_path(url)
    if path is not None and not path.exists():
        return None
    storage = open_storage(url, create_dirs=True, retry_s=retry_seconds())
    if study_name in studies.study_names(storage):
        raise studies.name_taken(storage, study_name)
    return storage


def fail_orphaned_trials(study: Any) -> int:
    """Mark FAIL every RUNNING trial whose driver is gone (same host and its process is dead,
    or no heartbeat for a minute). Optuna's own heartbeat does not cover Ray's ask/tell."""
    from optuna.trial import TrialState

    from search.searcher_attrs import ATTR_DRIVER, HEARTBEAT_PREFIX

    failed = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        driver = trial.user_attrs.get(ATTR_DRIVER)
        beat = study.user_attrs.get(HEARTBEAT_PREFIX + str(driver)) if driver else None
        if beat and _driver_alive(beat):
            continue
        studies.fail_trial(study, trial._trial_id, "driver stopped while the trial was running")
        failed += 1
    return failed


def _driver_alive(beat: dict[str, Any]) -> bool:
    if beat.get("host") == socket.gethostname():
        try:
            os.kill(int(beat["pid"]), 0)
        except (ProcessLookupError, ValueError, KeyError):
            return False
        except PermissionError:
            return True
        return beat.get("pid") != os.getpid()
    return time.time() - float(beat.get("time", 0)) < STALE_DRIVER_S


def _check_results_dir(study_name: str) -> Path:
    """Fail with one line, before anything is created, if the study's experiment directory
    cannot be written or its disk is (nearly) full; return the directory (not created)."""
    path = results_dir() / study_name
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    fix = "set TRADETUNE_RESULTS to a writable directory with free space"
    if not existing.is_dir():
        raise UserError(f"results directory {path} cannot be created: {existing} is not a "
                        f"directory; {fix}")
    try:  # a probe file that leaves no trace, in the deepest directory that exists
        with tempfile.TemporaryFile(dir=existing, prefix=".tradetune-probe-") as probe:
            probe.write(b"x" * 4096)
            probe.flush()
            os.fsync(probe.fileno())
        free_mb = shutil.disk_usage(existing).free / 2**20
    except OSError as exc:
        raise UserError(f"results directory {path} is not writable "
                        f"({exc.strerror or exc}); {fix}") from None
    if free_mb < MIN_FREE_MB:
        raise UserError(f"results directory {path} has only {free_mb:.1f} MB free; a sweep "
                        f"needs at least {MIN_FREE_MB} MB for checkpoints and logs; {fix}")
    return path


def _experiment_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"results directory {path} is not writable ({exc.strerror}); set "
                        "TRADETUNE_RESULTS to a writable directory") from None
    return path


def _sampler_seed(sweep_seed: int, n_trials: int) -> int:
    """A resumed sweep must not replay the random start-up samples of the first run."""
    return int(hashlib.sha256(f"{sweep_seed}/{n_trials}".encode()).hexdigest()[:8], 16)


def _make_sampler(search: dict[str, Any], seed: int) -> Any:
    import optuna

    from search.config import startup_trials

    if search.get("sampler", "tpe") == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials(search))


def _run(config: dict[str, Any], study: Any, space: Any, experiment_dir: Path, url: str,
         stop: StopSignals, progress: ProgressCallback) -> SweepResult:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.stopper import CombinedStopper

    from search.progress import Progress
    from search.stopping import StopOnSignal, StopRequested
    from search.searcher import (StopWhenStorageLost, StudyBookkeeping, StudySearcher,
                                 storage_backend)
    from trainables.rllib_trainable import train_trial

    search, training, resources = config["search"], config["training"], config["resources"]
    driver_id = f"{socket.gethostname()}-{os.getpid()}-{int(time.time())}"
    farewell = stop.last_words = _Farewell(study, driver_id, url, progress)
    searcher = None
    try:
        sampler = _make_sampler(search, _sampler_seed(search["seed"], len(study.trials)))
        searcher = StudySearcher(space, study, sampler, search["num_samples"], search["seed"],
                                 driver_id, objectives=studies.objective_names(config))
        bookkeeping = StudyBookkeeping(searcher, driver_id)
        bookkeeping.beat()
        remaining = max(searcher.budget_left(), 0)
        if remaining == 0:
            progress(ProgressEvent("nothing_to_run", (
                "the study's trial budget is taken by trials running in another driver; "
                "nothing to start here")))
            return _result(url, study, NOTHING_TO_RUN)
        scheduler = None
        if search["scheduler"] == "asha":
            # A run validates every eval_every iterations and once more at its last iteration.
            max_evals = math.ceil(training["max_iterations"] / training["eval_every"])
            scheduler = ASHAScheduler(time_attr=M.EVALS, max_t=max_evals,
                                      grace_period=max(1, min(training["min_evals"], max_evals)))
        elif search["scheduler"] == "racing":
            from search.racing_scheduler import racing_scheduler

            scheduler = racing_scheduler(searcher, search)
        _quiet_tune()
        # Trials never touch the study: they get the sweep config without its storage URL.
        trainable = tune.with_resources(
            tune.with_parameters(train_trial, sweep={**config, "storage": None}),
            {"cpu": resources["cpus_per_trial"], "gpu": resources["gpus_per_trial"]})
        progress_line = Progress(study, search["num_samples"], progress,
                                 score_name=f"validation {training['objective']}",
                                 needs=trial_needs(config))
        run_name = f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
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
                                  [bookkeeping, progress_line],
                                  stop=CombinedStopper(StopWhenStorageLost(study),
                                                       StopOnSignal())),
        )
        # Tune's own SIGINT handler would take Ctrl-C alone; ours takes Ctrl-C, SIGTERM and
        # SIGHUP alike and ends Tune's loop between two steps (``StopOnSignal``).
        with _env_flag("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"), \
                _env_flag("TUNE_DISABLE_SIGINT_HANDLER"), stop.graceful():
            tuner.fit()
    except StopRequested:
        pass  # stop.received says which signal
    except Exception:
        if stop.received is None:
            raise
        # Sent to the whole process group (`timeout`, SLURM), the signal also stopped Ray's
        # own processes under Tune's feet: Tune's errors are part of that stop.
    finally:
        with stop.deferred(raise_after=False):  # a second signal still stops at once
            if searcher is not None:
                searcher.fail_all_awaiting()
    storage_flag = "" if url == resolve_url() else f" --storage '{redact(url)}'"
    lost = getattr(storage_backend(study), "unavailable", None)
    if lost:
        raise StorageUnavailable(
            f"{lost}; the sweep stopped (finished trials are kept in the study). When the "
            f"database is back, continue with: tradetune resume --study {study.study_name}"
            f"{storage_flag}")
    cut = False
    if stop.received is None:
        with stop.deferred(raise_after=False):
            cut = _finish_interrupted(study, driver_id)  # trials Tune left running
    if stop.received is not None or cut:
        with stop.deferred(raise_after=False):
            farewell(stop.received)
            return _result(url, study, STOPPED, stop.received or signal.SIGINT)
    counts = study_state_counts(study)
    _check_some_trial_completed(study, driver_id, storage_flag)
    progress(ProgressEvent("finished", (
        f"sweep finished: {counts['COMPLETE']} complete, {counts['FAIL']} failed, "
        f"{counts['PRUNED']} pruned. See: tradetune best --study {study.study_name}"
        f"{storage_flag}")))
    return _result(url, study, COMPLETED)


class _Farewell:
    """The end of an interrupted sweep, said once, by the main thread or by the stop watchdog
    (search/stopping.py) if the stop overran: this driver's trials in flight marked FAIL, one
    line with the resume command (through ``progress``), and the exit code 128 + signal (130
    for Ctrl-C)."""

    def __init__(self, study: Any, driver_id: str | None, url: str,
                 progress: ProgressCallback):
        self._study, self._driver_id, self._url = study, driver_id, url
        self._progress = progress
        self._lock = threading.Lock()
        self._said = False

    def __call__(self, signum: int | None) -> int:
        from search.stopping import signal_name

        if self._lock.acquire(timeout=5):
            try:
                if not self._said:
                    self._said = True
                    if self._driver_id is not None:
                        _finish_interrupted(self._study, self._driver_id)
                    storage_flag = ("" if self._url == resolve_url()
                                    else f" --storage '{redact(self._url)}'")
                    self._progress(ProgressEvent("interrupted", (
                        f"sweep interrupted ({signal_name(signum)}); trials in flight were "
                        f"marked FAIL and will be re-run. Continue with: tradetune resume "
                        f"--study {self._study.study_name}{storage_flag}")))
            finally:
                self._lock.release()
        return 128 + (signum or signal.SIGINT)


NOTHING_STORED = "before the study was created; nothing was stored"
NO_TRIAL_STARTED = "before any trial started"


def _stopped_before(signum: int, command: str, what: str,
                    progress: ProgressCallback) -> int:
    from search.stopping import signal_name

    progress(ProgressEvent("stopped", f"tradetune {command}: stopped by {signal_name(signum)} "
                                      f"{what}"))
    return 128 + signum


@contextlib.contextmanager
def _ray_session(address: str | None, stop: StopSignals) -> Iterator[None]:
    """Connect to Ray (bounded wait, see search/cluster.py) for the block; shut down what this
    process started or joined. A stop signal during Ray's start-up stops cleanly too."""
    import ray

    from search.stopping import StopRequested

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


def _check_some_trial_completed(study: Any, driver_id: str, storage_flag: str) -> None:
    """A sweep whose trials all failed is a failure, not a finished sweep: raise
    ``SweepFailed`` naming the most common reason, as the study stores it."""
    import collections

    from search.searcher_attrs import ATTR_DRIVER, ATTR_FAIL

    mine = [t for t in study.get_trials(deepcopy=False)
            if t.user_attrs.get(ATTR_DRIVER) == driver_id]
    if not mine or any(t.state.name in ("COMPLETE", "PRUNED") for t in mine):
        return
    failed = [t for t in mine if t.state.name == "FAIL"]
    reasons = collections.Counter(t.user_attrs.get(ATTR_FAIL) or "no reason recorded"
                                  for t in failed)
    reason, count = reasons.most_common(1)[0] if reasons else ("no reason recorded", 0)
    how = "with" if count == len(failed) else f"most often ({count} of them) with"
    raise SweepFailed(f"no trial completed: {len(failed)} failed, {how}: {reason}; fix the "
                      "cause (the Ray worker logs named above have the details), then continue "
                      f"with: tradetune resume --study {study.study_name}{storage_flag}")


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


def _say_ray_logs(progress: ProgressCallback) -> None:
    """Say where Ray keeps this run's logs: a trial's worker output is only there."""
    import ray

    if not ray.is_initialized():
        return
    try:  # Ray has no public API for the session directory
        session = ray._private.worker._global_node.get_session_dir_path()
    except AttributeError:
        return
    progress(ProgressEvent("ray_logs", f"Ray worker logs: {session}/logs"))


@contextlib.contextmanager
def _env_flag(name: str) -> Iterator[None]:
    """Set the environment flag ``name`` to 1 for one fit, unless the user set it.

    TUNE_DISABLE_AUTO_CALLBACK_LOGGERS: Tune's default loggers include TensorBoard's, whose
    import loads torch in the driver (about 2 s per sweep); the sweep passes the JSON and CSV
    loggers itself. Scoped to one fit, so other Tune runs in this process keep Tune's
    defaults."""
    if name in os.environ:
        yield
        return
    os.environ[name] = "1"
    try:
        yield
    finally:
        os.environ.pop(name, None)


def _quiet_tune() -> None:
    """Tune's per-failure tracebacks and snapshot warnings drown the progress line; failures
    are printed as one line by ``Progress`` and their reason is stored on the study's trial."""
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # its start-up box ignores verbose=0
    for name in ("ray.tune", "ray.train", "ray.rllib"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _finish_interrupted(study: Any, driver_id: str) -> bool:
    """Trials of this driver still RUNNING after Tune returned were cut off (Ctrl-C)."""
    from optuna.trial import TrialState

    from search.searcher_attrs import ATTR_DRIVER

    cut = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
           if t.user_attrs.get(ATTR_DRIVER) == driver_id]
    for trial in cut:
        studies.fail_trial(study, trial._trial_id, "sweep interrupted")
    return bool(cut)
