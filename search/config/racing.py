"""The settings of fold racing (``search.racing``): their defaults and their check.

The racing rule itself runs in the sweep (``search/sweep/racing.py``).
"""
from __future__ import annotations

from typing import Any

from search.errors import ConfigError

DEFAULTS: dict[str, Any] = {"eta": 3, "min_trials": 5}


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
