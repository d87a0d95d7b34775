"""Check a study's provenance before its trials are replayed: the search space and the market
data must be the ones it was launched with.
"""
from __future__ import annotations

from typing import Any

from search.errors import SpaceError, StudyError
from search.study import studies
from search.study.schema import ATTR_DATA, ATTR_SPACE


def space_of(study: Any):
    """The study's search space as launched, to replay stored parameters into settings.

    Refuses (one line) when a custom space's module cannot be imported here, or when the space
    differs from the one the study was launched with: replaying parameters through another
    space would give settings the trials never ran with.
    """
    import importlib

    from spaces import get_space

    config = studies.stored_config(study)
    custom = config["search"].get("space")
    if custom:
        module = str(custom).partition(":")[0]
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - any failure to import user code is one line
            top = module.split(".")[0]
            raise StudyError(
                f"study {study.study_name!r} uses the custom search space {custom!r}, but "
                f"module {module!r} cannot be imported here ({type(exc).__name__}: {exc}); "
                f"make it importable, e.g. PYTHONPATH=/folder/holding/{top} tradetune ...") \
                from exc
    try:
        space = get_space(config["algorithm"], config["search"]["space_overrides"], custom)
    except SpaceError as exc:
        raise StudyError(f"the search space of study {study.study_name!r} cannot be loaded: "
                         f"{exc}") from exc
    detail = (studies.space_change(study, space) if ATTR_SPACE in study.user_attrs
              else None)  # older studies stored no space
    if detail:
        raise StudyError(f"the search space of study {study.study_name!r} changed since launch "
                         f"({detail}), so its trials' settings cannot be replayed; restore the "
                         "space as it was at launch")
    return space


def check_data_unchanged(study: Any) -> None:
    """Refuse to trade a study's checkpoints on market data other than the data it was launched
    on (the fingerprint ``launch`` stored). Studies without a stored fingerprint pass."""
    saved = study.user_attrs.get(ATTR_DATA)
    if not saved:
        return
    data = studies.stored_config(study).get("data") or {}
    path = data.get("path")
    what = f"data file {path}" if path else "the synthetic data"
    try:
        now = studies.data_fingerprint(data)
    except OSError as exc:
        raise StudyError(f"{what} of study {study.study_name!r} cannot be read "
                         f"({exc.strerror or exc}); restore it as it was at launch") from None
    if now != saved:
        raise StudyError(f"{what} changed since study {study.study_name!r} was launched "
                         f"(fingerprint {saved} -> {now}); restore it or launch a new study")
