"""Warm start: a new study's first trials are the best parameter sets of an earlier study.

Re-tuning every month on new data need not start from scratch: ``search.warm_start: {study:
NAME, top: K}`` (``launch --warm-start-from NAME --top K``) queues the K best COMPLETE trials
of study NAME, in the same storage, as the new study's first trials. Only their parameters
are queued, never their values (those were scored on other data). A parameter the new space
does not search, or a value outside its new range or choices, is dropped from the set (the
sampler fills it in), and the launch says which; an earlier study of another algorithm is
refused, since its parameters mean other things.
"""
from __future__ import annotations

from typing import Any

from search.errors import ConfigError
from search.study import studies
from search.study.storage import redact
from search.study.trials import optuna_study_id, top_trials


def warm_start_points(storage: Any, config: dict[str, Any], space: Any, url: str
                      ) -> tuple[list[dict[str, Any]], str | None]:
    """The parameter sets to queue and a note for the user (what was taken, what dropped);
    ``([], None)`` without ``search.warm_start``. ``storage`` is None where the storage holds
    no database yet. Raises ``StudyError``/``ConfigError`` in one line for a missing earlier
    study or another algorithm; run before the new study is created."""
    warm = config["search"].get("warm_start")
    if not warm:
        return [], None
    if storage is None:
        raise ConfigError(f"search.warm_start: study {warm['study']!r} is not in "
                          f"{redact(url)} (it holds no studies yet)")
    earlier = studies.load_study(storage, warm["study"])
    algorithm = studies.stored_config(earlier).get("algorithm")
    if algorithm != config["algorithm"]:
        raise ConfigError(f"search.warm_start: study {warm['study']!r} tuned {algorithm}, this "
                          f"sweep tunes {config['algorithm']}; its parameters mean other "
                          "things, so it cannot warm-start this study")
    ranges = _distributions(space)
    points, dropped = [], set()
    for trial in top_trials(storage, optuna_study_id(earlier), warm["top"]):
        kept = {name: value for name, value in trial.params.items()
                if name in ranges and _inside(ranges[name], value)}
        dropped |= set(trial.params) - set(kept)
        if kept:
            points.append(kept)
    note = (f"warm start: queued the {len(points)} best parameter set(s) of study "
            f"{warm['study']!r} as the first trials (values not copied)")
    if dropped:
        note += (f"; dropped {', '.join(sorted(dropped))} (not searched by this space, or "
                 "outside its range)")
    return points, note


def _distributions(space: Any) -> dict[str, Any]:
    """The space's parameters and their Optuna distributions, from one throwaway trial."""
    import optuna

    from search.scoped import optuna_quiet

    with optuna_quiet():
        trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    space(trial)
    return dict(trial.distributions)


def _inside(distribution: Any, value: Any) -> bool:
    """Whether ``value`` is one the distribution can give (its range, or one of its choices)."""
    choices = getattr(distribution, "choices", None)
    if choices is not None:
        return value in choices
    try:
        return distribution.low <= value <= distribution.high
    except TypeError:
        return False
