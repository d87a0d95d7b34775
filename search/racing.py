"""Fold racing (``search.scheduler: racing``): early stopping on the aggregate of a trial's runs.

A trial of several runs (walk-forward folds and/or seeds, ``trainables/runs.py``) trains them one
after the other; each finished run that is not the last is a rung. At rung r the trial's score is
its running aggregate: ``training.aggregate`` over the runs done so far, the same rule as its
final value. The trial goes on only if that score is among the best ``1/eta`` of the trials that
finished rung r (itself included), once at least ``min_trials`` trials have; otherwise it ends
PRUNED. Unlike ASHA on a single split, every rung judges the honest signal (out-of-sample runs),
not an early evaluation of one split.

The rung scores live in the study (user attribute ``rung_scores`` of each trial, written by the
driver that runs the trial), so drivers sharing a PostgreSQL study race against each other's
trials, and a resumed driver judges against the rungs of the drivers before it. This module is
ray-free: the decision is a pure function; ``search/racing_scheduler.py`` is the Tune side.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

from search.errors import ConfigError

ATTR_RUNG_SCORES = "rung_scores"
STOP_REASON = "racing"
DEFAULTS: dict[str, Any] = {"eta": 3, "min_trials": 5}


def keeps(score: float, others: Iterable[float], eta: float, min_trials: int) -> bool:
    """Whether a trial with running aggregate ``score`` at a rung goes on.

    Args:
        score: the trial's running aggregate at this rung.
        others: the same rung's scores of the other trials that finished it (non-finite ignored).
        eta: the trial goes on if it is within the best ``max(1, floor(n / eta))`` of the ``n``
            trials that finished the rung, itself included.
        min_trials: below this many trials at the rung (itself included), every trial goes on.

    A tie with the last kept score goes on: racing never stops a trial that is as good as one
    it keeps.
    """
    if not math.isfinite(score):
        return False
    finished = sorted([s for s in others if math.isfinite(s)] + [score], reverse=True)
    if len(finished) < min_trials:
        return True
    kept = max(1, math.floor(len(finished) / eta))
    return score >= finished[kept - 1]


def rung_scores(user_attrs: dict[str, Any]) -> list[float]:
    """A study trial's recorded rung scores (index = rung), as stored by :func:`with_rung`."""
    stored = user_attrs.get(ATTR_RUNG_SCORES)
    if not isinstance(stored, list):
        return []
    return [float(s) if isinstance(s, (int, float)) else math.nan for s in stored]


def with_rung(recorded: list[float], rung: int, score: float) -> list[float | None]:
    """What to store after rung ``rung``: ``recorded`` up to that rung, then ``score``. A
    repeated report (a trial restarted from a checkpoint inside that run) replaces its rung
    instead of adding one; a rung never recorded is stored as null (JSON has no NaN)."""
    kept = [s if math.isfinite(s) else None for s in recorded[:rung]]
    return kept + [None] * (rung - len(kept)) + [float(score)]


def others_at(trials: Iterable[Any], rung: int, exclude: int) -> list[float]:
    """Rung ``rung``'s scores of every study trial but the one numbered ``exclude``: any trial
    that finished the rung, whatever happened to it later (completed, pruned, failed or still
    running), since its score there measured its configuration on those runs."""
    found = []
    for trial in trials:
        if trial.number == exclude:
            continue
        scores = rung_scores(trial.user_attrs)
        if len(scores) > rung and math.isfinite(scores[rung]):
            found.append(scores[rung])
    return found


def check_config(config: dict[str, Any], several_runs: bool) -> None:
    """Validate ``search.racing`` and whether racing can be used with this config (one line)."""
    search = config["search"]
    settings = search.get("racing")
    if not isinstance(settings, dict):
        raise ConfigError(f"search.racing must be a mapping such as {{eta: 3, min_trials: 5}}, "
                          f"got {settings!r}")
    eta, min_trials = settings.get("eta"), settings.get("min_trials")
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not eta > 1:
        raise ConfigError(f"search.racing.eta must be a number > 1 (3 keeps the best third of "
                          f"the trials at each rung), got {eta!r}")
    if isinstance(min_trials, bool) or not isinstance(min_trials, int) or min_trials < 1:
        raise ConfigError(f"search.racing.min_trials must be a whole number >= 1, got "
                          f"{min_trials!r}")
    if search["scheduler"] != "racing":
        return
    if config["training"].get("objectives") is not None:
        raise ConfigError("search.scheduler 'racing' is not available for multi-objective "
                          "studies (training.objectives) until racing on several objectives is "
                          "defined; use scheduler none")
    if not several_runs:
        raise ConfigError("search.scheduler 'racing' needs several runs per trial to race on: "
                          "set data.walk_forward (e.g. {folds: 3}) and/or training.seeds > 1, "
                          "or use scheduler none or asha")
