"""The checks ``launch`` makes before it creates anything, and ``launch --dry-run``: every one of
them and nothing else.

The dry run creates no study, no SQLite file, no tables, no results folder: the storage is
opened read-only (or, when its database does not exist yet, only its directory is checked),
and the results folder is checked the way ``launch`` checks it, with a probe file that leaves no
trace. The resource check counts this machine's CPUs and GPUs without Ray; only with
``--address`` does it connect to that cluster (bounded wait) and disconnect.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from search.errors import UserError
from search.study import studies
from search.study import folders
from search.study.storage import probe, redact, resolve_url
from search.sweep.cluster import check_resources, probe_address, ray_address
from search.sweep.warm_start import warm_start_points

MIN_FREE_MB = 100  # checkpoints of one small sweep take a few MB each (num_to_keep=1)


def check_results_dir(path: Path) -> Path:
    """Fail with one line, before anything is created, if a study's folder ``path`` (see
    ``search/study/folders.py``) cannot be written or its disk is (nearly) full; return it (not
    created)."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    fix = "set TRADETUNE_RESULTS to a writable directory with free space"
    if not existing.is_dir():
        raise UserError(f"results directory {path} cannot be created: {existing} is not a "
                        f"directory; {fix}")
    try:  # a probe file that leaves no trace, in the deepest directory that exists
        with tempfile.TemporaryFile(dir=existing, prefix=".tradetune-probe-") as handle:
            handle.write(b"x" * 4096)
            handle.flush()
            os.fsync(handle.fileno())
        free_mb = shutil.disk_usage(existing).free / 2**20
    except OSError as exc:
        raise UserError(f"results directory {path} is not writable "
                        f"({exc.strerror or exc}); {fix}") from None
    if free_mb < MIN_FREE_MB:
        raise UserError(f"results directory {path} has only {free_mb:.1f} MB free; a sweep "
                        f"needs at least {MIN_FREE_MB} MB for checkpoints and logs; {fix}")
    return path


def check_inputs(config: dict[str, Any]) -> tuple[Any, Any]:
    """The market data and the search space of a sweep config, each checked as every sweep
    needs them before anything is created or changed: the data read and split, the space
    built, and a custom space called once and its settings put to RLlib's own validation.
    Returns (market, space); raises one-line ``UserError``s."""
    from spaces import get_space
    from trainables.market import prepare_market
    from trainables.rllib_trainable import check_custom_space

    if (config.get("tracking") or {}).get("mlflow"):
        from search.results.mlflow_runs import check_installed

        check_installed()  # without importing it
    market = prepare_market(config["data"])
    space = get_space(config["algorithm"], config["search"]["space_overrides"],
                      config["search"]["space"])
    check_custom_space(space, config)
    return market, space


def dry_run(config: dict[str, Any], storage_url: str | None = None,
            address: str | None = None) -> dict[str, Any]:
    """Check a validated sweep ``config`` as ``launch`` would; return the effective config (its
    storage the URL launch would use, redacted), the data description ``tradetune data``
    prints, and what was found at the storage and the results folder. Raises the same one-line
    errors as ``launch``."""
    from search.results.data_summary import describe
    from search.sweep.cluster import local_node

    url = resolve_url(storage_url, config.get("storage"))
    market, space = check_inputs(config)
    target = ray_address(address)
    if target is None:  # what a local Ray would have, without starting one
        check_resources(config, None, nodes=[local_node()])
    else:
        if target != "auto":
            probe_address(target)
        check_resources(config, address)
    storage, state = probe(url)
    try:
        if storage is not None:
            studies.check_name_free(storage, config["study"])
        _, warm_note = warm_start_points(storage, config, space, url)
    finally:
        if storage is not None:
            storage.engine.dispose()
    folder, taken = folders.folder_for(config["study"], uid="00000000")
    results = check_results_dir(folder)
    moved = folder.name != config["study"]
    tracking = dict(config.get("tracking") or {})
    if tracking.get("mlflow"):  # the store it would log to (from MLFLOW_TRACKING_URI, say)
        from search.results.mlflow_runs import tracking_uri

        tracking["mlflow_uri"] = redact(tracking_uri(tracking))
    return {"config": {**config, "tracking": tracking, "storage": redact(url)},
            "data": describe(market),
            "storage": redact(url), "storage_state": state,
            "results": str(results.with_name(f"{config['study']}-<id>") if moved else results),
            "results_exists": results.is_dir() and not moved,
            "results_taken_by": folders.describe_owner(taken) if moved else None,
            "warm_start": warm_note}
