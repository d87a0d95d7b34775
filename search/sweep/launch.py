"""Launch and resume sweeps: Ray Tune drives the trials, the Optuna study in SQL keeps the truth.

Resume does not unpickle Tune's experiment state (a database ahead of Tune's last snapshot
makes stock restores fail). It reconciles the study instead: trials left RUNNING by a dead
driver become FAIL, and a fresh Tune run on the same study runs only the remaining budget, so
the sampler sees every finished trial and nothing is counted twice.
"""
from __future__ import annotations

import contextlib
import functools
from typing import TYPE_CHECKING, Any

from search.events import (
    NOTHING_TO_RUN,
    STOPPED,
    ProgressCallback,
    ProgressEvent,
    SweepResult,
    no_progress,
)
from search.study import folders, studies
from search.study.claims import claim_lock
from search.study.storage import (
    check_url,
    open_existing,
    open_storage,
    redact,
    resolve_url,
    retry_seconds,
    sqlite_path,
)
from search.study.trials import fail_orphaned_trials, study_state_counts
from search.sweep.cluster import check_resources, probe_address, ray_address
from search.sweep.preflight import check_inputs, check_results_dir
from search.sweep.warm_start import warm_start_points
from search.sweep.runtime import (
    Farewell,
    ray_session,
    run_trials,
    say_ray_logs,
    sweep_result,
)

if TYPE_CHECKING:
    from search.sweep.stopping import StopSignals


def launch(config: dict[str, Any], storage_url: str | None = None,
           address: str | None = None, command: str = "",
           progress: ProgressCallback = no_progress) -> SweepResult:
    """Create the study for ``config`` and run its sweep; say what happens through
    ``progress`` and return how it ended (raises ``UserError``s: see ``SweepResult``).

    Everything that can fail is checked before the study is created: the config, the data, the
    space, the storage URL, the results directory, the Ray cluster (bounded wait) and whether
    one trial fits on a node of it. A stop signal before the study exists leaves nothing."""
    from search.sweep.stopping import StopRequested, StopSignals

    study, url = None, None
    with StopSignals() as stop, contextlib.ExitStack() as session:
        stop.last_words = functools.partial(_stopped_before, command="launch",
                                            what=NOTHING_STORED, progress=progress)
        try:
            url = resolve_url(storage_url, config.get("storage"))
            _, space = check_inputs(config)  # a custom space runs once, before anything exists
            check_url(url, create_dirs=True)
            uid = folders.new_uid()
            check_results_dir(folders.folder_for(config["study"], uid)[0])
            target = ray_address(address)
            if target not in (None, "auto"):
                probe_address(target)  # a wrong address fails in seconds, before the storage
            storage = _open_if_exists(url, config["study"])
            points, note = warm_start_points(storage, config, space, url)
            session.enter_context(ray_session(address, stop))
            check_resources(config, address)
            say_ray_logs(progress)
            with stop.deferred():  # the study is created whole, or not at all
                storage = storage or open_storage(url, create_dirs=True,
                                                  retry_s=retry_seconds())
                experiment_dir, taken = folders.claim_new(config["study"], uid, url)
                try:
                    study = studies.create_study(
                        storage, config, space, studies.data_fingerprint(config["data"]),
                        command, uid=uid, folder=experiment_dir)
                except BaseException:
                    folders.release(experiment_dir, uid)
                    raise
                stop.last_words = Farewell(study, None, url, progress)
                if taken is not None or experiment_dir.name != config["study"]:
                    progress(ProgressEvent("note", (
                        f"results folder {experiment_dir.with_name(config['study'])} belongs "
                        f"to {folders.describe_owner(taken)}; this study's results go to "
                        f"{experiment_dir}")))
                for point in points:
                    study.enqueue_trial(point, skip_if_exists=True)
                if note:
                    progress(ProgressEvent("note", note))
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
            return run_trials(config, study, space, experiment_dir, url, stop, progress)
        except StopRequested as stopped:  # before run_trials took over its own stops
            return _stopped(stop, stopped.signum, url, config["study"], study)


def resume(study_name: str, storage_url: str | None = None, address: str | None = None,
           progress: ProgressCallback = no_progress) -> SweepResult:
    """Continue a study after a crash or interruption, running only its remaining budget.
    Nothing in the study changes until the Ray cluster answers and a trial fits on it. Says
    what happens through ``progress`` and returns how it ended, as ``launch``."""
    from search.sweep.stopping import StopRequested, StopSignals

    study, url = None, None
    with StopSignals() as stop, contextlib.ExitStack() as session:
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
            _, space = check_inputs(config)
            studies.check_unchanged(study, space, studies.data_fingerprint(config["data"]))
            experiment_dir = check_results_dir(folders.check_owned(study, url, adopt=False))
            budget = config["search"]["num_samples"]
            counts = study_state_counts(study)
            if counts["COMPLETE"] + counts["PRUNED"] < budget:
                session.enter_context(ray_session(address, stop))
                check_resources(config, address)
                say_ray_logs(progress)
            with stop.deferred():
                experiment_dir = folders.check_owned(study, url)
                with claim_lock(study):  # a trial being claimed is tagged before it is seen
                    orphans = fail_orphaned_trials(study)
                stop.last_words = Farewell(study, None, url, progress)
            counts = study_state_counts(study)
            done = counts["COMPLETE"] + counts["PRUNED"]
            if done >= budget:
                progress(ProgressEvent("nothing_to_run", (
                    f"study {study_name!r} is already finished: {done} of {budget} trials "
                    "done; nothing to resume")))
                return sweep_result(url, study, NOTHING_TO_RUN)
            progress(ProgressEvent("resuming", (
                f"resuming study {study_name!r}: {done} of {budget} trials done, {orphans} "
                f"orphaned trial(s) marked FAIL, {counts['RUNNING']} running elsewhere")))
        except StopRequested as stopped:
            return _stopped(stop, stopped.signum, url, study_name, study)
        try:
            return run_trials(config, study, space, experiment_dir, url, stop, progress)
        except StopRequested as stopped:  # before run_trials took over its own stops
            return _stopped(stop, stopped.signum, url, study_name, study)


def _stopped(stop: StopSignals, signum: int, url: str | None, study_name: str,
             study: Any) -> SweepResult:
    """A stop signal ended ``launch`` or ``resume`` outside Tune's loop: its last words (the
    study's bookkeeping and the line for the user), then the result."""
    stop.last_words(signum)
    if study is not None:
        return sweep_result(url, study, STOPPED, signum)
    return SweepResult(study=study_name, storage=redact(url) if url else "", reason=STOPPED,
                       signal=signum)


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


NOTHING_STORED = "before the study was created; nothing was stored"


NO_TRIAL_STARTED = "before any trial started"


def _stopped_before(signum: int, command: str, what: str,
                    progress: ProgressCallback) -> int:
    from search.sweep.stopping import signal_name

    progress(ProgressEvent("stopped", f"tradetune {command}: stopped by {signal_name(signum)} "
                                      f"{what}"))
    return 128 + signum
