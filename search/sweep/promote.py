"""`tradetune promote`: retrain a chosen configuration on seeds the study never used.

A sweep picks its best trial on the same seeds it tuned with, so the winner's score holds some
seed luck on top of configuration quality. Eimer, Lindauer and Raileanu (2023, "Hyperparameters
in Reinforcement Learning and How To Tune Them") show how large that effect is in RL and ask
for tuning seeds and test seeds to be kept apart. Promotion does that: it replays the trial's
parameters through the study's space and trains them again with K fresh seeds, through the same
trainable (``trainables.rllib_trainable.train_trial``) and on the same data, env settings,
training settings and splits (every walk-forward fold), then compares the fresh seeds' scores
with the study's value.

Fresh seeds are drawn deterministically from the sweep seed and the trial number and kept only
if they are at least ``SEED_MARGIN`` away from every seed the study used: each trial's seed,
the run seeds a several-seed trial derives from it (``trainables.runs.Run.seed``), the seed every
trial number would get (``trial_seed``, for trials that failed before their seed was stored),
and the seeds of earlier promotions (so repeating a promotion does not rerun the same seeds).

Each fresh seed is one Tune trial with ``training.seeds: 1``: it trains every fold with that
seed, and its score is the trial-level aggregate over the folds (``training.aggregate``), the
same quantity as the study's value. The result is stored on the study's trial as the user
attribute ``promotion``; ``best`` and the report show it.
"""
from __future__ import annotations

import bisect
import math
import statistics
import time
from pathlib import Path
from typing import Any, Iterable

from search.errors import PromotionError, both
from search.events import ProgressCallback, ProgressEvent, no_progress
from search.results import verdict
from search.results.summaries import (  # noqa: F401 (REPRODUCE_RATIO: the rule's ratio)
    REPRODUCE_RATIO,
    RULE,
    promotion_verdict,
)
from search.study import studies
from search.study.schema import ATTR_METRICS, ATTR_PROMOTION, ATTR_SEED
from search.study.trials import (
    first_value,
    get_trial,
    optuna_trial_id,
    replace_finished_trial_attr,
)
from trainables.seeds import promotion_seed

MAX_SEEDS = 100
SEED_MARGIN = 1024     # fresh seeds keep this far from used ones: see fresh_seeds
MAX_CANDIDATES = 100_000
# The verdict's rule (RULE, REPRODUCE_RATIO) lives with the readers of stored promotions,
# search/results/summaries.py, so that best, the report and the model card judge alike.


def promote(url: str, name: str, number: int | None, seeds: int,
            address: str | None = None,
            progress: ProgressCallback = no_progress) -> dict[str, Any]:
    """Retrain trial ``number`` (default: the best, as ``evaluate`` picks it) of study ``name``
    with ``seeds`` fresh seeds, store the result on the trial and return it. ``progress`` is
    told when the training starts (a "promoting" event).

    Raises:
        PromotionError: ``seeds`` out of range, the trial not COMPLETE, or a seed's run failed.
        StudyError: the study or the trial does not exist, or its space or data changed.
    """
    from spaces import get_space
    from trainables.market import prepare_market

    if not 1 <= seeds <= MAX_SEEDS:
        raise PromotionError(f"{both('--seeds', 'seeds')} must be between 1 and {MAX_SEEDS}, "
                             f"got {seeds}")
    study, trial = get_trial(url, name, number)
    if trial.state.name != "COMPLETE":
        raise PromotionError(f"trial {trial.number} of study {name!r} is {trial.state.name}, "
                             "not COMPLETE; promote a completed trial (see "
                             f"`{both('tradetune best', 'Study.best()')}`)")
    config = studies.stored_config(study)
    prepare_market(config["data"])
    space = get_space(config["algorithm"], config["search"]["space_overrides"],
                      config["search"]["space"])
    studies.check_unchanged(study, space, studies.data_fingerprint(config["data"]))

    from search.study import folders
    from search.sweep.preflight import check_results_dir

    experiment_dir = check_results_dir(folders.check_owned(study, url))
    used = used_seeds(study.get_trials(deepcopy=False), config)
    fresh = fresh_seeds(config["search"]["seed"], trial.number, seeds, used)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    progress(ProgressEvent("promoting", f"promoting trial {trial.number} of {name!r}: {seeds} "
                                        f"fresh seed(s), {_runs_per_seed(config)} run(s) each "
                                        "..."))
    scores, fold_scores, fresh_metrics, where = _retrain(config, trial, fresh, experiment_dir,
                                                         address, progress, name)
    judged = summarise(_value(trial), scores)
    against_holding = verdict.promotion(trial.user_attrs.get(ATTR_METRICS) or {}, fresh_metrics)
    previous = trial.user_attrs.get(ATTR_PROMOTION) or {}
    result = {
        "study": name,
        "trial": trial.number,
        "objective": studies.objective_names(config)[0],
        "study_value": _value(trial),
        "study_run_scores": _study_run_scores(trial),
        "seeds": fresh,
        "scores": scores,
        **({"fold_scores": fold_scores} if any(fold_scores) else {}),
        **judged,
        "rule": RULE,
        **(against_holding or {}),
        "stress": _stress(study, trial),
        "round": int(previous.get("round", 0)) + 1,
        "earlier_seeds": [*previous.get("earlier_seeds", []), *previous.get("seeds", [])],
        "excluded_seeds": len(used),
        "when": started,
        "results": str(where),
    }
    store(url, optuna_trial_id(trial), result)
    return result


def _stress(study: Any, trial: Any) -> dict[str, Any] | None:
    """The trial's kept checkpoint under the cost stresses, on validation (the split that
    selected it; the test split stays unseen): None when the checkpoint is gone."""
    from search.errors import StudyError
    from search.results.evaluate import score_checkpoint
    from search.study.provenance import space_of

    try:
        return score_checkpoint(study, space_of(study), trial, "val", stress=True)[0]["stress"]
    except StudyError:
        return None


def _value(trial: Any) -> float:
    """The study's value of a trial (its first objective's in a multi-objective study)."""
    return float(first_value(trial))


def used_seeds(trials: Iterable[Any], config: dict[str, Any]) -> set[int]:
    """Every seed the study trained with or would have: see the module docstring."""
    from trainables.runs import Run
    from trainables.seeds import trial_seed

    n_seeds = int((config.get("training") or {}).get("seeds") or 1)
    used: set[int] = set()
    for trial in trials:
        base = {trial_seed(config["search"]["seed"], trial.number)}
        if isinstance(trial.user_attrs.get(ATTR_SEED), int):
            base.add(trial.user_attrs[ATTR_SEED])
        for seed in base:
            used.update(Run(0, None, s).seed(seed) for s in range(n_seeds))
        promotion = trial.user_attrs.get(ATTR_PROMOTION) or {}
        used.update(promotion.get("seeds", []))
        used.update(promotion.get("earlier_seeds", []))
    return used


def fresh_seeds(sweep_seed: int, trial_number: int, k: int, used: set[int]) -> list[int]:
    """``k`` seeds derived from the sweep seed and the trial number (the same study state gives
    the same seeds), in the trainables' seed range, each at least ``SEED_MARGIN`` away from every
    seed in ``used`` and from each other.

    The margin is there because RLlib does not use a seed alone: env runner ``i`` seeds with
    ``seed + i`` and a vector env seeds its ``j``-th copy with that ``+ j``, so seeds a few apart
    would share env and sampling streams.
    """
    taken = sorted(used)
    fresh: list[int] = []
    for candidate in range(MAX_CANDIDATES):
        seed = promotion_seed(sweep_seed, trial_number, candidate)
        if not _near(seed, taken):
            fresh.append(seed)
            bisect.insort(taken, seed)
            if len(fresh) == k:
                return fresh
    raise PromotionError(f"found only {len(fresh)} of {k} seeds the study never used; "
                         f"ask for fewer {both('--seeds', 'seeds')}")


def _near(seed: int, taken: list[int]) -> bool:
    """Whether a seed of the sorted list ``taken`` lies within ``SEED_MARGIN`` of ``seed``."""
    i = bisect.bisect_left(taken, seed - SEED_MARGIN + 1)
    return i < len(taken) and taken[i] < seed + SEED_MARGIN


def summarise(study_value: float, scores: list[float]) -> dict[str, Any]:
    """Mean, spread and verdict of the fresh seeds' scores against the study's value."""
    mean = statistics.fmean(scores)
    return {
        "mean": mean,
        "std": statistics.stdev(scores) if len(scores) > 1 else None,  # sample std
        "gap": mean - study_value,
        "ratio": mean / study_value if study_value > 0 else None,  # a share of a positive claim
        "verdict": promotion_verdict(study_value, mean),
    }


def _runs_per_seed(config: dict[str, Any]) -> int:
    return int(((config["data"] or {}).get("walk_forward") or {}).get("folds") or 1)


def _study_run_scores(trial: Any) -> dict[str, Any] | None:
    """The study's own per-seed scores and their spread, for a trial of several runs."""
    metrics = trial.user_attrs.get(ATTR_METRICS) or {}
    if not metrics.get("run_scores"):
        return None
    return {"seed_scores": metrics.get("seed_scores"), "fold_scores": metrics.get("fold_scores"),
            "score_std": metrics.get("score_std")}


def _retrain(config: dict[str, Any], trial: Any, fresh: list[int], experiment_dir: Path,
             address: str | None, progress: ProgressCallback, name: str
             ) -> tuple[list[float], list[list[float] | None], list[dict[str, Any]], Path]:
    """One Tune trial per fresh seed, with the sweep's own trainable and no searcher; their
    experiment goes under the study's folder (``experiment_dir``, checked to be the study's)
    as ``promote-<trial>-<time>``."""
    from ray import tune

    from search.sweep.cluster import check_resources
    from search.sweep.runtime import quiet_tune, ray_session, run_config
    from search.sweep.stopping import StopOnSignal, StopRequested, StopSignals, signal_name
    from trainables import metrics as M
    from trainables.rllib_trainable import train_trial

    training, resources = config["training"], config["resources"]
    # Each fresh seed is one seed of the configuration: it trains every fold with that seed.
    sweep = {**config, "storage": None, "training": {**training, "seeds": 1}}
    trainable = tune.with_resources(tune.with_parameters(train_trial, sweep=sweep),
                                    {"cpu": resources["cpus_per_trial"],
                                     "gpu": resources["gpus_per_trial"]})
    run_name = f"promote-{trial.number}-{time.strftime('%Y%m%d-%H%M%S')}"
    tuner = tune.Tuner(
        trainable,
        param_space={**trial.params, M.TRIAL_SEED: tune.grid_search(fresh)},
        tune_config=tune.TuneConfig(metric=M.SEARCH_METRIC, mode=M.SEARCH_MODE,
                                    max_concurrent_trials=config["search"]["max_concurrent"],
                                    reuse_actors=True),
        run_config=run_config(run_name, experiment_dir, training["max_failures"], [],
                              stop=StopOnSignal()))
    # Ray as launch starts it (search/sweep/cluster.py: the cluster at --address/RAY_ADDRESS,
    # else a local Ray of its own), stop signals as launch takes them.
    with StopSignals() as stop, ray_session(address, stop):
        check_resources(config, address)
        with quiet_tune(), stop.graceful():
            grid = tuner.fit()
        if stop.received is not None:
            progress(ProgressEvent("stopped", f"promotion of trial {trial.number} of {name!r} "
                                              f"stopped by {signal_name(stop.received)}; "
                                              "nothing was stored"))
            raise StopRequested(stop.received)
    by_seed = {}
    for result in grid:
        seed = result.config[M.TRIAL_SEED]
        score = (result.metrics or {}).get(M.SEARCH_METRIC)
        if result.error is not None or not isinstance(score, (int, float)) \
                or not math.isfinite(score):
            why = (_last_line(result.error) if result.error is not None
                   else f"final score {score!r}")
            raise PromotionError(f"fresh seed {seed} of trial {trial.number} failed ({why}); "
                                 f"nothing was stored. Logs: {experiment_dir / run_name}")
        best = {k[len(M.BEST_PREFIX):]: v for k, v in (result.metrics or {}).items()
                if k.startswith(M.BEST_PREFIX)}
        by_seed[seed] = (float(score), (result.metrics or {}).get(M.FOLD_SCORES), best)
    return ([by_seed[s][0] for s in fresh], [by_seed[s][1] for s in fresh],
            [by_seed[s][2] for s in fresh], experiment_dir / run_name)


def _last_line(error: BaseException) -> str:
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else type(error).__name__


def store(url: str, trial_id: int, result: dict[str, Any]) -> None:
    """Write ``result`` as the trial's ``promotion`` user attribute, replacing an earlier one."""
    replace_finished_trial_attr(url, trial_id, ATTR_PROMOTION, result)
