"""The test split's audit trail: every scoring of a study's test split is recorded in the study.

Each look at the test split is a selection step: a user who looks, changes something and looks
again is tuning on the test split, and after enough looks its score no longer estimates how the
chosen trial does on unseen data. So `evaluate` (test split), `evaluate --top` and `report`
record each look (when, which trials, which command) before they show any test score, and
`best`, `status` and the report show the count.

One study user attribute per look, under a unique key (``test_look:<UTC time>:<random>``): two
commands looking at once each insert their own row, so neither can lose the other's record (a
shared list would be a read-modify-write race). Ray-, torch- and pandas-free.
"""
from __future__ import annotations

import secrets
from datetime import datetime, timezone
from typing import Any

from search.errors import StudyError, both

PREFIX = "test_look:"


def record_look(study: Any, trials: list[int], command: str) -> dict[str, Any]:
    """Record that ``command`` scored ``trials`` of ``study`` on the test split; return the look.

    Call it after the scores exist and before they are shown: a command that fails before
    scoring records nothing, and a look that cannot be recorded is not shown.

    Raises:
        StudyError: the study storage refused the write (e.g. a read-only database file).
    """
    import optuna
    import sqlalchemy.exc

    now = datetime.now(timezone.utc)
    look = {"at": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "trials": sorted(set(trials)),
            "command": command}
    key = f"{PREFIX}{now.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}:{secrets.token_hex(4)}"
    try:
        study.set_user_attr(key, look)
    except (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError) as exc:
        root: BaseException = exc  # Optuna wraps the database's own reason
        for _ in range(10):
            root = root.__cause__ or root.__context__ or root
        reason = " ".join(str(getattr(root, "orig", None) or root).split())[:200]
        raise StudyError(f"cannot record this look at the test split of study "
                         f"{study.study_name!r} in its storage ({reason}); test scores are shown "
                         "only once recorded: make the storage writable (`"
                         f"{both('evaluate --split val', 'Study.evaluate(split=\'val\')')}` "
                         "needs no record)") from None
    return look


def looks(storage: Any, study_id: int) -> list[dict[str, Any]]:
    """Every recorded look at the study's test split, oldest first."""
    attrs = storage.get_study_user_attrs(study_id)
    return [attrs[key] for key in sorted(k for k in attrs if k.startswith(PREFIX))]


def summary(storage: Any, study_id: int) -> dict[str, Any]:
    """How many times the study's test split was looked at, and the last look (or None)."""
    seen = looks(storage, study_id)
    return {"count": len(seen), "last": seen[-1] if seen else None}
