"""``launch --dry-run``: every check ``launch`` makes before it creates anything, and nothing else.

No study, no SQLite file, no tables, no results folder, no Ray: the storage is opened read-only
(or, when its database does not exist yet, only its directory is checked), and the results
folder is checked the way ``launch`` checks it, with a probe file that leaves no trace.
"""
from __future__ import annotations

from typing import Any

from search import study as studies
from search.storage import probe, redact, resolve_url


def dry_run(config: dict[str, Any], storage_url: str | None = None,
            address: str | None = None) -> dict[str, Any]:
    """Check a validated sweep ``config`` as ``launch`` would; return the effective config (its
    storage the URL launch would use, redacted), the data description ``tradetune data``
    prints, and what was found at the storage and the results folder. Raises the same one-line
    errors as ``launch``."""
    from spaces import get_space
    from search.tuner import _check_results_dir
    from search.data_summary import describe
    from trainables.market import prepare_market

    url = resolve_url(storage_url, config.get("storage"))
    market = prepare_market(config["data"])
    get_space(config["algorithm"], config["search"]["space_overrides"], config["search"]["space"])
    # TODO(lead): the cluster-resource check and the custom-space dry run are called here, once
    # they land: search.tuner.check_resources(config, address) (it also covers --address) and
    # the check that a custom search.space samples a valid trial. `launch` must make the same
    # calls; this is the one place the dry run does.
    storage, state = probe(url)
    if storage is not None:
        studies.check_name_free(storage, config["study"])
        storage.engine.dispose()
    results = _check_results_dir(config["study"])
    return {"config": {**config, "storage": redact(url)}, "data": describe(market),
            "storage": redact(url), "storage_state": state, "results": str(results),
            "results_exists": results.is_dir()}
