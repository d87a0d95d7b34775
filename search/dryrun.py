"""``launch --dry-run``: every check ``launch`` makes before it creates anything, and nothing else.

No study, no SQLite file, no tables, no results folder: the storage is opened read-only
(or, when its database does not exist yet, only its directory is checked), and the results
folder is checked the way ``launch`` checks it, with a probe file that leaves no trace. The
resource check counts this machine's CPUs and GPUs without Ray; only with ``--address`` does
it connect to that cluster (bounded wait) and disconnect.
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
    from search.cluster import check_resources, local_node, probe_address, ray_address
    from search.tuner import _check_results_dir
    from search.data_summary import describe
    from spaces import dry_run as dry_run_space
    from spaces import get_space
    from trainables.market import prepare_market

    url = resolve_url(storage_url, config.get("storage"))
    market = prepare_market(config["data"])
    space = get_space(config["algorithm"], config["search"]["space_overrides"],
                      config["search"]["space"])
    dry_run_space(space, config)
    target = ray_address(address)
    if target is None:  # what a local Ray would have, without starting one
        check_resources(config, None, nodes=[local_node()])
    else:
        if target != "auto":
            probe_address(target)
        check_resources(config, address)
    storage, state = probe(url)
    if storage is not None:
        studies.check_name_free(storage, config["study"])
        storage.engine.dispose()
    results = _check_results_dir(config["study"])
    return {"config": {**config, "storage": redact(url)}, "data": describe(market),
            "storage": redact(url), "storage_state": state, "results": str(results),
            "results_exists": results.is_dir()}
