"""Launch and resume sweeps: Ray Tune drives the trials, the Optuna study in SQL keeps the truth.

Resume does not unpickle Tune's experiment state (a database ahead of Tune's last snapshot
makes stock restores fail). It reconciles the study instead: trials left RUNNING by a dead
driver become FAIL, and a fresh Tune run on the same study runs only the remaining budget, so
the sampler sees every finished trial and nothing is counted twice.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from search.claims import claim_lock
from search.errors import StorageUnavailable, StudyError, UserError
from search.storage import (check_url, open_storage, redact, resolve_url, results_dir,
                            retry_seconds)
from search.storage import open_existing
from search import study as studies
from trainables import metrics as M

STALE_DRIVER_S = 60.0
MIN_FREE_MB = 100  # checkpoints of one small sweep take a few MB each (num_to_keep=1)


def launch(config: dict[str, Any], storage_url: str | None = None,
           address: str | None = None, command: str = "") -> int:
    """Create the study for ``config`` and run its sweep. Returns the process exit code."""
    from spaces import dry_run, get_space
    from trainables.market import prepare_market

    url = resolve_url(storage_url, config.get("storage"))
    prepare_market(config["data"])
    space = get_space(config["algorithm"], config["search"]["space_overrides"],
                      config["search"]["space"])
    dry_run(space, config)  # a custom space runs once here, before anything is created
    check_url(url, create_dirs=True)
    experiment_dir = _check_results_dir(config["study"])
    storage = open_storage(url, create_dirs=True, retry_s=retry_seconds())
    study = studies.create_study(storage, config, space, studies.data_fingerprint(config["data"]),
                                 command)
    _experiment_dir(experiment_dir)
    if config["search"]["enqueue_tutorial"] and space.first_params:
        study.enqueue_trial(space.first_params, skip_if_exists=True)
    for point in config["search"]["enqueue"]:
        study.enqueue_trial(point, skip_if_exists=True)
    print(f"launched study {config['study']!r} in {redact(url)}: {config['algorithm']} x "
          f"{config['search']['num_samples']} trials, results under {experiment_dir}")
    return _run(config, study, space, experiment_dir, url, address)


def resume(study_name: str, storage_url: str | None = None, address: str | None = None) -> int:
    """Continue a study after a crash or interruption, running only its remaining budget."""
    from spaces import dry_run, get_space
    from trainables.market import prepare_market

    url = resolve_url(storage_url)
    storage = open_existing(url, retry_s=retry_seconds())  # a missing study creates nothing
    study = studies.load_study(storage, study_name)
    config = studies.stored_config(study)
    if config.get("storage"):
        config["storage"] = None  # stored redacted; this run uses the URL it was given
    prepare_market(config["data"])
    space = get_space(config["algorithm"], config["search"]["space_overrides"],
                      config["search"]["space"])
    studies.check_unchanged(study, space, studies.data_fingerprint(config["data"]))
    dry_run(space, config)
    experiment_dir = _experiment_dir(_check_results_dir(study_name))  # before any change
    with claim_lock(study):  # a trial another driver is claiming is tagged before it is seen
        orphans = fail_orphaned_trials(study)
    counts = state_counts(study)
    done = counts["COMPLETE"] + counts["PRUNED"]
    budget = config["search"]["num_samples"]
    if done >= budget:
        print(f"study {study_name!r} is already finished: {done} of {budget} trials done; "
              "nothing to resume")
        return 0
    print(f"resuming study {study_name!r}: {done} of {budget} trials done, "
          f"{orphans} orphaned trial(s) marked FAIL, {counts['RUNNING']} running elsewhere")
    return _run(config, study, space, experiment_dir, url, address)


def state_counts(study: Any) -> dict[str, int]:
    counts = {s: 0 for s in ("COMPLETE", "PRUNED", "RUNNING", "FAIL", "WAITING")}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


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
         address: str | None) -> int:
    import ray
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
    from ray.tune.schedulers import ASHAScheduler

    from search.progress import Progress
    from search.searcher import (StopWhenStorageLost, StudyBookkeeping, StudySearcher,
                                 storage_backend)
    from trainables.rllib_trainable import train_trial

    search, training, resources = config["search"], config["training"], config["resources"]
    driver_id = f"{socket.gethostname()}-{os.getpid()}-{int(time.time())}"
    sampler = _make_sampler(search, _sampler_seed(search["seed"], len(study.trials)))
    searcher = StudySearcher(space, study, sampler, search["num_samples"], search["seed"],
                             driver_id, objectives=studies.objective_names(config))
    bookkeeping = StudyBookkeeping(searcher, driver_id)
    bookkeeping.beat()
    remaining = max(searcher.budget_left(), 0)
    if remaining == 0:
        print("the study's trial budget is taken by trials running in another driver; "
              "nothing to start here")
        return 0
    scheduler = None
    if search["scheduler"] == "asha":
        max_evals = max(1, training["max_iterations"] // training["eval_every"])
        scheduler = ASHAScheduler(time_attr=M.EVALS, max_t=max_evals,
                                  grace_period=max(1, min(training["min_evals"], max_evals)))
    elif search["scheduler"] == "racing":
        from search.racing_scheduler import racing_scheduler

        scheduler = racing_scheduler(searcher, search)
    _quiet_tune()
    started_ray = not ray.is_initialized()
    if started_ray:
        ray.init(address=address or os.environ.get("RAY_ADDRESS"), logging_level=logging.ERROR,
                 log_to_driver=False, include_dashboard=False, configure_logging=False)
        _print_ray_logs()
    # Trials never touch the study: they get the sweep config without its storage URL.
    trainable = tune.with_resources(
        tune.with_parameters(train_trial, sweep={**config, "storage": None}),
        {"cpu": resources["cpus_per_trial"], "gpu": resources["gpus_per_trial"]})
    progress = Progress(study, search["num_samples"],
                        score_name=f"validation {training['objective']}")
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
        run_config=tune.RunConfig(
            name=run_name, storage_path=str(experiment_dir.resolve()), verbose=0,
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=1, checkpoint_score_attribute=M.BEST_VAL_SCORE,
                checkpoint_score_order="max"),
            failure_config=tune.FailureConfig(max_failures=training["max_failures"]),
            stop=StopWhenStorageLost(study),
            callbacks=[bookkeeping, progress, JsonLoggerCallback(), CSVLoggerCallback()]),
    )
    interrupted = False
    try:
        with _without_tensorboard_logger():
            tuner.fit()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        searcher.fail_all_awaiting()
        if started_ray:
            ray.shutdown()
    storage_flag = "" if url == resolve_url() else f" --storage '{redact(url)}'"
    lost = getattr(storage_backend(study), "unavailable", None)
    if lost:
        raise StorageUnavailable(
            f"{lost}; the sweep stopped (finished trials are kept in the study). When the "
            f"database is back, continue with: tradetune resume --study {study.study_name}"
            f"{storage_flag}")
    counts = state_counts(study)
    interrupted = interrupted or _finish_interrupted(study, driver_id)
    if interrupted:
        print(f"sweep interrupted; trials in flight were marked FAIL and will be re-run. "
              f"Continue with: tradetune resume --study {study.study_name}{storage_flag}")
        return 130
    print(f"sweep finished: {counts['COMPLETE']} complete, {counts['FAIL']} failed, "
          f"{counts['PRUNED']} pruned. See: tradetune best --study {study.study_name}"
          f"{storage_flag}")
    return 0


def _print_ray_logs() -> None:
    """Say where Ray keeps this run's logs: a trial's worker output is only there."""
    import ray

    try:  # Ray has no public API for the session directory
        session = ray._private.worker._global_node.get_session_dir_path()
    except AttributeError:
        return
    print(f"Ray worker logs: {session}/logs", flush=True)


@contextlib.contextmanager
def _without_tensorboard_logger() -> Iterator[None]:
    """Tune's default loggers include TensorBoard's, whose import loads torch in the driver
    (about 2 s per sweep); the sweep passes the JSON and CSV loggers itself. Scoped to one fit,
    so other Tune runs in this process keep Tune's defaults; a value the user set is kept."""
    name = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"
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
