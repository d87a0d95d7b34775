"""Storage URLs: precedence, redaction, and one-line errors for unusable storages."""
from __future__ import annotations

import pickle
import re

import pytest

from search.errors import StorageError
from search.study.storage import check_url, open_storage, redact, resolve_url


def test_precedence(results_dir, monkeypatch):
    assert resolve_url() == f"sqlite:///{results_dir / 'tradetune.db'}"
    assert resolve_url(config_url="sqlite:////c.db") == "sqlite:////c.db"
    monkeypatch.setenv("TRADETUNE_STORAGE", "sqlite:////env.db")
    assert resolve_url(config_url="sqlite:////c.db") == "sqlite:////env.db"
    assert resolve_url("sqlite:////cli.db", "sqlite:////c.db") == "sqlite:////cli.db"


def test_relative_paths_are_taken_from_the_working_directory(tmp_path, monkeypatch):
    """The URL is stored and printed in `resume` hints: a relative SQLite file must not move
    with the directory a later command runs in."""
    monkeypatch.chdir(tmp_path)
    assert resolve_url("sqlite:///db/x.db?timeout=5") == f"sqlite:///{tmp_path}/db/x.db?timeout=5"
    monkeypatch.setenv("TRADETUNE_RESULTS", "res")
    assert resolve_url() == f"sqlite:///{tmp_path / 'res' / 'tradetune.db'}"
    assert resolve_url("postgresql://u@h/db") == "postgresql://u@h/db"


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///",
                                 "sqlite:///file::memory:?cache=shared",
                                 "sqlite:///x.db?mode=memory&uri=true"])
def test_in_memory_sqlite_is_refused(url):
    """An in-memory database vanishes with the command: a sweep's study would be lost."""
    with pytest.raises(StorageError, match="in-memory storage .* keeps nothing"):
        check_url(url)


@pytest.mark.parametrize("url, why", [
    ("mysql://u@h/db", "no MySQL driver is installed"),
    ("mysql+pymysql://u@h/db", "no MySQL driver is installed"),
    ("postgresql+psycopg2://u@h/db", "psycopg 3 only"),
    ("postgresql+asyncpg://u@h/db", "psycopg 3 only"),
    ("redis://h", "use sqlite:///PATH"),
    ("sqlite:relative.db", "use sqlite:///PATH")])
def test_only_schemes_that_work_are_accepted(url, why):
    with pytest.raises(StorageError) as info:
        check_url(url)
    message = str(info.value)
    assert message.startswith(f"unsupported storage URL {url!r}") and why in message
    assert message.endswith(": use sqlite:///PATH or postgresql://USER@HOST:PORT/DB "
                            "(postgres:// also works)")


def test_postgres_scheme_is_postgresql_through_psycopg():
    """SQLAlchemy has no `postgres` dialect: the URL failed with a driver error."""
    from search.study.storage import _connect_url

    assert _connect_url("postgres://u@h:5432/db") == "postgresql+psycopg://u@h:5432/db"
    assert _connect_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    storage = open_storage("postgres://postgres@127.0.0.1:5432/test")
    assert isinstance(storage.get_all_studies(), list)
    assert storage.display_url == "postgres://postgres@127.0.0.1:5432/test"


def test_a_read_creates_no_sqlite_file(tmp_path):
    with pytest.raises(StorageError, match="no study database at"):
        open_storage(f"sqlite:///{tmp_path / 'x.db'}", read_only=True)
    with pytest.raises(StorageError, match="no study database at"):
        open_storage(f"sqlite:///{tmp_path / 'new' / 'x.db'}", read_only=True)
    assert list(tmp_path.iterdir()) == []


def test_redact_hides_passwords_only():
    assert redact("postgresql://bob:s3cret@db:5432/x") == "postgresql://bob:***@db:5432/x"
    assert redact("postgresql://bob@db/x") == "postgresql://bob@db/x"
    assert redact("sqlite:////tmp/a.db") == "sqlite:////tmp/a.db"


def test_unsupported_scheme_and_missing_sqlite_dir(tmp_path):
    with pytest.raises(StorageError, match="unsupported storage URL 'redis://h'"):
        check_url("redis://h")
    with pytest.raises(StorageError, match="SQLite storage directory .*nowhere does not exist"):
        check_url(f"sqlite:///{tmp_path}/nowhere/x.db")


def test_unreachable_postgres_is_one_line_without_password():
    with pytest.raises(StorageError) as info:
        open_storage("postgresql://postgres:topsecret@127.0.0.1:1/none")
    message = str(info.value)
    assert "cannot open storage" in message and "\n" not in message
    assert "topsecret" not in message


def test_env_reference_is_expanded_only_when_connecting(monkeypatch, tmp_path):
    monkeypatch.setenv("TT_DB_DIR", str(tmp_path))
    with pytest.raises(StorageError, match=r"\$\{TT_MISSING\} but that environment variable"):
        open_storage("postgresql://u:${TT_MISSING}@127.0.0.1/x")


def test_pickled_storage_carries_no_password():
    storage = open_storage("postgresql://postgres:hunter2@127.0.0.1:5432/test")
    blob = pickle.dumps(storage)
    assert b"hunter2" not in blob


def test_a_connection_lost_inside_an_optuna_query_is_retried():
    """Optuna's trial query catches a lost connection and runs a fallback query on the same
    session, which fails with "Can't reconnect until invalid transaction is rolled back"; the
    error Optuna raises must still count as a lost connection (seen when a database restarted
    mid-sweep). Real PostgreSQL: the session's own backend is terminated."""
    import optuna
    import sqlalchemy
    from sqlalchemy import orm

    from search.study.storage import _transient

    engine = sqlalchemy.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test")
    sessions = orm.scoped_session(orm.sessionmaker(bind=engine))
    try:
        with pytest.raises(optuna.exceptions.StorageInternalError) as info:
            with optuna.storages._rdb.storage._create_scoped_session(sessions) as session:
                pid = session.execute(sqlalchemy.text("SELECT pg_backend_pid()")).scalar()
                with engine.connect() as other:
                    other.execute(sqlalchemy.text(f"SELECT pg_terminate_backend({pid})"))
                try:
                    session.execute(sqlalchemy.text("SELECT 1"))
                except sqlalchemy.exc.OperationalError:  # what Optuna's _get_trials does
                    session.execute(sqlalchemy.text("SELECT 2"))
        assert isinstance(info.value.__cause__, sqlalchemy.exc.PendingRollbackError)
        assert _transient(info.value)
        assert not _transient(optuna.exceptions.StorageInternalError("bad data"))
    finally:
        sessions.remove()
        engine.dispose()


def test_every_public_optuna_storage_method_is_retried_or_excluded_with_a_reason():
    """The retry wrapper patches a list of Optuna's storage methods by name: a method a new
    Optuna adds (or a private one it renames) must not bypass the retries unnoticed."""
    import inspect

    import optuna

    from search.study.storage import NOT_RETRIED, RETRIED, RedactingRDBStorage

    public = {name for cls in (optuna.storages.BaseStorage, optuna.storages.RDBStorage)
              for name, _ in inspect.getmembers(cls, callable) if not name.startswith("_")}
    assert public - set(RETRIED) - set(NOT_RETRIED) == set()
    assert set(RETRIED) & set(NOT_RETRIED) == set()
    assert all(reason.strip() for reason in NOT_RETRIED.values())
    for name in RETRIED:
        wrapper = RedactingRDBStorage.__dict__[name]
        assert wrapper.__wrapped__ is getattr(optuna.storages.RDBStorage, name), name


def test_a_dropped_database_is_said_once_with_its_reason_and_the_time_left(caplog):
    """The database vanishes under a sweep (dropped): the note names the real reason (it used
    to say "is unreachable (())", SQLAlchemy's internal error), is said once however many
    threads retry at the same time (the sweep's loop and its heartbeat), and the retry says
    how long is left while it waits, so it never looks like a hang."""
    import logging
    import threading
    import uuid

    import optuna
    import sqlalchemy

    from search.errors import StorageUnavailable

    name = f"tt_dropped_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                                     isolation_level="AUTOCOMMIT")
    drop = sqlalchemy.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    try:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
        storage = open_storage(f"postgresql://postgres@127.0.0.1:5432/{name}", retry_s=3)
        optuna.create_study(storage=storage, study_name="gone")
        with admin.connect() as connection:
            connection.execute(drop)
        raised: list[BaseException] = []

        def read() -> None:
            try:
                storage.get_all_studies()
            except BaseException as exc:  # noqa: BLE001 - checked below
                raised.append(exc)

        with caplog.at_level(logging.WARNING, logger="tradetune"):
            threads = [threading.Thread(target=read) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
    finally:
        with admin.connect() as connection:
            connection.execute(drop)
        admin.dispose()
    notes = [r.getMessage() for r in caplog.records if r.name == "tradetune"]
    reason = f'database "{name}" does not exist'
    began = [n for n in notes if "is unreachable" in n]
    assert len(began) == 1 and reason in began[0] and "(())" not in began[0], notes
    assert began[0].endswith("; retrying for up to 3 s"), notes
    left = [n for n in notes if "still unreachable" in n]
    assert left and all(reason in n and re.search(r"retrying, \d+ s of 3 s left$", n)
                        for n in left), notes
    assert len(raised) == 2 and all(isinstance(e, StorageUnavailable) for e in raised)
    assert reason in str(raised[0]) and "unavailable for 3 s" in str(raised[0])
