"""``export``: a trial's RLlib settings, sweep config and kept checkpoint in a folder of the
user's choice (with ``--onnx`` also the deployable bundle, ``search/results/onnx_bundle.py``).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from search.results.onnx_bundle import BUNDLE_FILES, ONNX_FILE
from search.results.outputs import write_folder
from search.results.summaries import trial_summary
from search.study import studies
from search.study.provenance import space_of
from search.study.schema import ATTR_MLFLOW_RUN, ATTR_SEED
from search.study.trials import checkpoint_of, first_value, get_trial
from trainables.settings import trial_env

# Every name `export` writes into its folder; all of them are replaced by each export (a name
# this export does not write is removed), nothing else there is touched.
EXPORT_NAMES = ("rllib_config.json", "sweep_config.json", "trial.json", "checkpoint",
                *BUNDLE_FILES)


def export(url: str, name: str, number: int | None, out: Path, onnx: bool = False,
           force: bool = False) -> dict[str, Any]:
    """Write the trial's RLlib settings, the sweep config and its checkpoint under ``out``;
    with ``onnx``, also the deployable bundle (search/results/onnx_bundle.py; imports torch).

    ``out`` must be new, empty or an earlier export of the same study (``trial.json`` names the
    study), unless ``force``; either way only the names in ``EXPORT_NAMES`` are replaced, all of
    them, so no file of an earlier export is left beside this one.
    """
    study, trial = get_trial(url, name, number)
    source = checkpoint_of(trial)
    config = studies.stored_config(study)
    settings = space_of(study).replay(trial.params)
    from spaces import algorithm_of

    algorithm = config["algorithm"].upper()
    declared = algorithm_of(config["algorithm"])  # its RLlib config class, named by its space
    env = trial_env(config, settings)
    rllib = {
        "algorithm": algorithm,
        "framework": "torch",
        "environment": {"env": "trainables.env:TradingEnv", "env_config": env},
        "training": settings["training"],
        "rl_module": {"model_config": settings["model"]},
        "debugging": {"seed": trial.user_attrs.get(ATTR_SEED)},
        "how_to_load": (f"from {declared.config_module} import {declared.config_class_name};"
                        f" cfg = {declared.config_class_name}().training(**d['training'])"
                        ".rl_module(**d['rl_module'])"),
    }
    summary = {"study": name, **trial_summary(trial)}

    def write(folder: Path) -> None:
        (folder / "rllib_config.json").write_text(json.dumps(rllib, indent=2, default=str))
        (folder / "sweep_config.json").write_text(json.dumps(config, indent=2, default=str))
        (folder / "trial.json").write_text(json.dumps(summary, indent=2, default=str))
        shutil.copytree(source, folder / "checkpoint")
        if onnx:
            from search.results.onnx_bundle import write_bundle

            write_bundle(folder, url, study, trial)

    files = write_folder(out, EXPORT_NAMES, write,
                         ours=lambda folder: export_study(folder) == name,
                         storage_url=url,
                         force=force, what=f"an earlier export of study {name!r}")
    result = {"study": name, "trial": trial.number, "value": first_value(trial), "out": str(out),
              "files": files}
    if onnx:
        result["onnx"] = str(out / ONNX_FILE)
    tracked = trial.user_attrs.get(ATTR_MLFLOW_RUN)
    if isinstance(tracked, dict) and tracked.get("run_id"):  # the sweep tracked it in MLflow
        from search.results.mlflow_runs import log_export

        result["mlflow"] = log_export(tracked, config.get("tracking"), Path(out), files)
    return result


def export_study(folder: Path) -> str | None:
    """The study an export folder was written from (``trial.json``, or ``sweep_config.json`` of
    exports older than the study in ``trial.json``); None if it is not an export."""
    for marker in ("trial.json", "sweep_config.json"):
        try:
            data = json.loads((folder / marker).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("study"), str):
            return data["study"]
    return None
