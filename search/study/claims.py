"""One lock per study, held while a driver claims a trial, so that claims are atomic.

Several drivers (``launch`` plus any number of ``resume``) share a study's budget of
``num_samples`` counted trials. Counting the trials and then asking Optuna for a new one is a
race: drivers that count at the same moment all see room and all ask. Every claim therefore
counts, asks and tags the new trial while holding this lock, and the next claimer counts only
after the previous one's trial is committed.

- PostgreSQL: a transaction-scoped advisory lock on (``LOCK_SPACE``, study id), taken on a
  connection of its own. Optuna's trial creation locks the study's row ``FOR UPDATE`` on its own
  connection; an advisory lock never conflicts with that, so holding it cannot deadlock the
  holder. The database releases it when the transaction ends or the connection drops (a killed
  driver never leaves it taken).
- SQLite: the database file's write lock cannot be held across Optuna's own writes (they would
  wait on it), so the lock is ``flock`` on a file beside the database, released by the kernel
  when the holder exits. SQLite is for one machine only (see README, "Storage"), and every
  process of that machine sees the same lock file.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from typing import Any, ContextManager, Iterator

from search.errors import StorageError
from search.study.storage import sqlite_path

# First key of the advisory lock: "TTcl" as a 32-bit integer, so TradeTune's locks do not
# collide with another application's advisory locks on (small integer, study id).
LOCK_SPACE = int.from_bytes(b"TTcl", "big")
LOCK_SUFFIX = ".claim-lock"
_MEMORY_LOCKS: dict[int, threading.Lock] = {}


def storage_backend(study: Any) -> Any:
    """The study's own storage object (Optuna may wrap it in a cache)."""
    return getattr(study._storage, "_backend", study._storage)


def claim_lock(study: Any) -> ContextManager[None]:
    """The claim lock of an Optuna study: held while a driver counts the budget and takes a
    trial, or changes which trials count (``resume`` failing a dead driver's trials)."""
    return study_lock(storage_backend(study), study._study_id)


@contextlib.contextmanager
def study_lock(backend: Any, study_id: int) -> Iterator[None]:
    """Hold the claim lock of study ``study_id`` in the Optuna RDB storage ``backend``."""
    engine = backend.engine
    dialect = engine.dialect.name
    if dialect == "postgresql":
        import sqlalchemy

        with engine.connect() as connection, connection.begin():
            connection.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(:space, :study)"),
                               {"space": LOCK_SPACE, "study": int(study_id)})
            yield
    elif dialect == "sqlite":
        path = sqlite_path(backend.url)
        if path is None:  # an in-memory database lives in this one process
            with _MEMORY_LOCKS.setdefault(id(backend), threading.Lock()):
                yield
            return
        lock_file = path.with_name(path.name + LOCK_SUFFIX)
        try:
            # A descriptor of its own per claim: flock excludes other descriptors, so threads
            # of one process exclude each other as other processes do.
            handle = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StorageError(f"cannot create the claim lock file {lock_file} beside the "
                               f"SQLite study database ({exc.strerror or exc})") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        finally:
            os.close(handle)  # releases the lock
    else:
        raise StorageError(f"storage {getattr(backend, 'display_url', '') or dialect}: sweeps "
                           "need PostgreSQL or SQLite (atomic trial claims); "
                           f"{dialect} is not supported")
