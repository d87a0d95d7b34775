"""Storage URLs: the one place they are resolved, redacted and opened as Optuna storages.

Precedence: ``--storage`` > ``TRADETUNE_STORAGE`` > the config's ``storage`` > a SQLite file in
the results directory. A password can stay out of every file: use ``PGPASSWORD``, ``~/.pgpass``
(both read by libpq), or write ``${VAR}`` in the URL, expanded only when connecting.
"""
from __future__ import annotations

import functools
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Callable

import optuna

from search.errors import StorageError, StorageUnavailable, both
from search.scoped import logger_levels

RESULTS_ENV = "TRADETUNE_RESULTS"
STORAGE_ENV = "TRADETUNE_STORAGE"
# How long a sweep's driver retries a storage that stopped answering before it stops the sweep
# (finished trials are safe in the study; `resume` continues). Readers do not wait.
RETRY_ENV = "TRADETUNE_STORAGE_RETRY_S"
DEFAULT_RETRY_S = 300.0
LAUNCH = both("tradetune launch CONFIG.yaml", "tradetune.launch('CONFIG.yaml')")
DEFAULT_DB = "tradetune.db"
# The storages TradeTune works with, each with the SQLAlchemy driver it connects through (both
# installed with TradeTune: sqlite3 from Python, psycopg 3). ``postgres://`` is the scheme libpq,
# Heroku and many hosting services print; SQLAlchemy refuses it, so it is rewritten here.
DRIVERS = {"sqlite": "sqlite", "sqlite+pysqlite": "sqlite",
           "postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg",
           "postgresql+psycopg": "postgresql+psycopg"}
WORKING_SCHEMES = "sqlite:///PATH or postgresql://USER@HOST:PORT/DB (postgres:// also works)"
# user:password@ after a scheme; neither part spans whitespace or quotes, so a message that
# quotes a URL and mentions another later is not mangled.
_PASSWORD = re.compile(r"(?P<head>://[^:/@\s'\"]+:)(?P<password>[^@\s'\"]*)(?P<tail>@)")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def results_dir() -> Path:
    """Where experiments, checkpoints and the default study database live (absolute: a relative
    ``TRADETUNE_RESULTS`` is taken from the working directory, not from a trial's)."""
    path = Path(os.environ.get(RESULTS_ENV) or Path.home() / "tradetune_results")
    return path.expanduser().absolute()


def relative_to_results(path: str | os.PathLike) -> str:
    """How a path under the results directory is stored in a study: relative to it, so a
    results folder can be moved or shared (``TRADETUNE_RESULTS`` then names the new place).
    A path elsewhere is kept as it is."""
    try:
        return Path(path).resolve().relative_to(results_dir().resolve()).as_posix()
    except (ValueError, OSError):
        return str(path)


def under_results(stored: str | os.PathLike) -> Path:
    """A path stored by :func:`relative_to_results`, resolved against today's results
    directory; an absolute path (older studies) is returned as it is."""
    path = Path(stored)
    return path if path.is_absolute() else results_dir() / path


def resolve_url(cli_url: str | None = None, config_url: str | None = None) -> str:
    """The storage URL to use, as written by the user (``${VAR}`` references unexpanded), but
    with a SQLite file's path made absolute from the working directory: the URL is stored,
    printed in ``resume`` hints and used by later commands, wherever they run."""
    url = cli_url or os.environ.get(STORAGE_ENV) or config_url
    if not url:
        return f"sqlite:///{results_dir() / DEFAULT_DB}"
    url = str(url)
    path = sqlite_path(url) if _scheme(url) in DRIVERS else None
    return f"{_scheme(url)}:///{path}{_sqlite_parts(url)[1]}" if path is not None else url


def redact(url: str) -> str:
    """The URL with any literal password replaced by ``***``: safe to print and store.
    A ``${VAR}`` reference is kept: it names the secret without holding it."""
    def hide(match: re.Match) -> str:
        if _ENV_REF.fullmatch(match["password"]):
            return match.group(0)
        return f"{match['head']}***{match['tail']}"
    return _PASSWORD.sub(hide, str(url))


def _expand(url: str) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise StorageError(f"storage URL refers to ${{{name}}} but that environment "
                               "variable is not set")
        from urllib.parse import quote

        return quote(os.environ[name], safe="")
    return _ENV_REF.sub(value, url)


def _scheme(url: str) -> str:
    """The URL's ``dialect[+driver]`` as written, lower-case ('' when it has no ``://``)."""
    return url.split("://", 1)[0].lower() if "://" in url else ""


def _dialect(url: str) -> str:
    """'sqlite' or 'postgresql' for a supported URL, else the scheme's dialect part."""
    driver = DRIVERS.get(_scheme(url))
    return driver.split("+", 1)[0] if driver else _scheme(url).split("+", 1)[0]


def _sqlite_parts(url: str) -> tuple[str, str]:
    """The database part of a SQLite URL and its ``?query`` (``''`` for none)."""
    database = url.split("://", 1)[1]
    database = database[1:] if database.startswith("/") else database
    path, _, query = database.partition("?")
    return path, f"?{query}" if query else ""


def _in_memory(url: str) -> bool:
    path, query = _sqlite_parts(url)
    return path in ("", ":memory:") or path.startswith("file::memory:") or "mode=memory" in query


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL, absolute (None for other backends or in-memory).
    A relative path is taken from the working directory, as SQLite does; ``~`` is expanded."""
    if _dialect(url) != "sqlite" or "://" not in url or _in_memory(url):
        return None
    return Path(_sqlite_parts(url)[0]).expanduser().absolute()


def check_url(url: str, create_dirs: bool = False) -> None:
    """Reject unsupported schemes, in-memory SQLite and SQLite files in missing directories,
    before connecting; creates nothing."""
    scheme = _scheme(url)
    if scheme not in DRIVERS:
        why = ""
        if scheme.split("+", 1)[0] in ("mysql", "mariadb"):
            why = " (no MySQL driver is installed with TradeTune)"
        elif scheme.split("+", 1)[0] in ("postgresql", "postgres"):
            why = " (TradeTune connects to PostgreSQL through psycopg 3 only)"
        raise StorageError(f"unsupported storage URL {redact(url)!r}{why}: use "
                           f"{WORKING_SCHEMES}")
    if _dialect(url) == "sqlite" and _in_memory(url):
        raise StorageError(f"in-memory storage {redact(url)!r} keeps nothing: a sweep's study "
                           "would vanish when the command ends, and a query has nothing to "
                           "read; give a file, e.g. sqlite:///PATH/tradetune.db (without "
                           f"{both('--storage', 'storage')}: the SQLite file in the results "
                           "directory)")
    path = sqlite_path(url)
    # The results directory is ours to create (``open_storage(create_dirs=True)``); any other
    # missing directory is a typo the user should see.
    creatable = create_dirs and path is not None and path.parent == results_dir()
    if path is not None and not path.parent.is_dir() and not creatable:
        raise StorageError(f"SQLite storage directory {path.parent} does not exist")
    if path is not None and path.is_dir():
        raise StorageError(f"SQLite storage {path} is a directory; give a database file, e.g. "
                           f"sqlite:///{path / DEFAULT_DB}")


def _connect_url(url: str) -> str:
    """The URL SQLAlchemy is given: the driver TradeTune installs, SQLite's file absolute, and
    ``${VAR}`` references expanded. Never printed (it may hold a password)."""
    if _dialect(url) == "sqlite":
        return f"sqlite:///{sqlite_path(url)}{_sqlite_parts(url)[1]}"
    return _expand(f"{DRIVERS[_scheme(url)]}://{url.split('://', 1)[1]}")


def retry_seconds() -> float:
    """The driver's storage retry window: ``TRADETUNE_STORAGE_RETRY_S`` or 300 s."""
    raw = os.environ.get(RETRY_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_RETRY_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise StorageError(f"{RETRY_ENV} must be a number of seconds >= 0, got {raw!r}")
    return value


def _origin(exc: BaseException) -> BaseException | None:
    """The exception ``exc`` was raised from or while handling."""
    return exc.__cause__ or exc.__context__


def _transient(exc: BaseException) -> bool:
    """A lost or refused connection (or a locked SQLite file): worth retrying. Optuna wraps
    SQLAlchemy errors in ``StorageInternalError``, and some of its queries catch a lost
    connection and fail on the next statement of the same session ("Can't reconnect until
    invalid transaction is rolled back"), so look down the chain of causes and contexts."""
    import sqlalchemy.exc as sa

    for _ in range(6):
        if isinstance(exc, (sa.OperationalError, sa.InterfaceError, sa.TimeoutError)):
            return True
        if isinstance(exc, sa.DBAPIError) and exc.connection_invalidated:
            return True
        origin = _origin(exc)
        if origin is None:
            return False
        exc = origin
    return False


def _reason(exc: BaseException) -> str:
    """What went wrong, in the database driver's words: the first message of the database
    driver down the chain of causes (SQLAlchemy keeps it as ``orig``), else the deepest
    message that says something (SQLAlchemy's internal ``InvalidatePoolError`` says "()",
    Optuna's ``StorageInternalError`` only guesses), else the exception's type."""
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(chain) < 8:
        chain.append(seen)
        seen = _origin(seen)
    for link in chain:
        orig = getattr(link, "orig", None)
        if orig is not None and _message(orig):
            return redact(_message(orig))
    import optuna

    for link in reversed(chain):
        if _message(link) and not isinstance(link, optuna.exceptions.StorageInternalError):
            return redact(_message(link))
    return type(chain[-1]).__name__


def _message(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return "" if text in ("", "()") else text[:200]


class RedactingRDBStorage(optuna.storages.RDBStorage):
    """Optuna's RDBStorage with two duties for long sweeps:

    - pickled (Tune pickles its searcher, and with it this storage, into the experiment
      directory), it carries the redacted URL only, never a password;
    - a storage call that loses its connection is retried with backoff for ``retry_s``
      seconds (a database restart or fail-over); after that the storage is marked
      ``unavailable`` and every call raises ``StorageUnavailable`` at once, so the sweep can
      stop cleanly. Writes are single-row upserts, safe to repeat, except finishing a trial
      (see ``_retry``) and, rarely, creating one whose commit landed but whose answer was lost.
    """

    display_url = ""
    retry_s = 0.0
    unavailable: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["url"] = self.display_url
        state["engine_kwargs"] = {}
        state.pop("_calls", None)
        state.pop("_outage_state", None)
        return state

    def count_trial_states(self, study_id: int) -> dict[str, int]:
        """How many trials of the study are in each state (every state of ``TRIAL_STATES``
        named, 0 if none), by one SQL query instead of loading every trial; retried like the
        other storage calls."""
        return self._call(_count_trial_states, (study_id,), {})

    def _call(self, method: Callable, args: tuple, kwargs: dict) -> Any:
        calls = self.__dict__.setdefault("_calls", threading.local())
        if getattr(calls, "depth", 0):  # an inner call of a retried call: no nested retries
            return method(self, *args, **kwargs)
        calls.depth = 1
        try:
            # Optuna's trial query logs "Caught an error from sqlalchemy ... Falling back" on
            # any OperationalError, a lost connection included; the retry says what happened.
            with logger_levels({"optuna.storages._rdb.storage": logging.ERROR}):
                return self._retry(method, args, kwargs)
        finally:
            calls.depth = 0

    def _retry(self, method: Callable, args: tuple, kwargs: dict) -> Any:
        first_failure, delay = None, 0.5
        while True:
            if self.unavailable:
                raise StorageUnavailable(self.unavailable)
            try:
                result = method(self, *args, **kwargs)
            except optuna.exceptions.UpdateFinishedTrialError:
                if first_failure is not None and method.__name__ == "set_trial_state_values":
                    return True  # the attempt that lost its connection had committed
                raise
            except Exception as exc:
                if not _transient(exc):
                    raise
                now = time.monotonic()
                first_failure = first_failure or now
                since = self._outage_began(now, _reason(exc))
                if now - since >= self.retry_s:
                    waited = f" for {self.retry_s:g} s" if self.retry_s > 0 else ""
                    self.unavailable = (f"study storage {self.display_url} unavailable"
                                        f"{waited} ({_reason(exc)})")
                    raise StorageUnavailable(self.unavailable) from None
                if _GIVE_UP.wait(max(min(delay, self.retry_s - (now - since)), 0.0)):
                    self.unavailable = (f"study storage {self.display_url} unavailable "
                                        f"({_reason(exc)}); a stop signal ended the retry")
                    raise StorageUnavailable(self.unavailable) from None
                delay = min(delay * 2, 10.0)
                continue
            if first_failure is not None:
                self._outage_ended()
            return result

    def _outage(self) -> dict[str, Any]:
        """The outage this storage is in, shared by every thread that calls it (the sweep's
        loop, its heartbeat): one window of ``retry_s``, one set of notes."""
        return self.__dict__.setdefault("_outage_state", {"lock": threading.Lock(),
                                                          "since": None, "noted": 0.0})

    def _outage_began(self, now: float, reason: str) -> float:
        """Note the outage once when it begins, then how long is left every ``_note_every``
        seconds (so a long retry never looks like a hang); return when it began."""
        outage = self._outage()
        with outage["lock"]:
            if outage["since"] is None:
                outage["since"] = outage["noted"] = now
                if self.retry_s > 0:
                    _note(f"study storage {self.display_url} is unreachable ({reason}); "
                          f"retrying for up to {self.retry_s:g} s")
            elif self.retry_s > 0 and now - outage["noted"] >= _note_every(self.retry_s):
                outage["noted"] = now
                left = max(self.retry_s - (now - outage["since"]), 0.0)
                _note(f"study storage {self.display_url} still unreachable ({reason}); "
                      f"retrying, {left:.0f} s of {self.retry_s:g} s left")
            return outage["since"]

    def _outage_ended(self) -> None:
        outage = self._outage()
        with outage["lock"]:
            if outage["since"] is not None:
                _note(f"study storage {self.display_url} is reachable again after "
                      f"{time.monotonic() - outage['since']:.0f} s")
                outage["since"] = None


# Set while a stop signal is being acted on (search/sweep/stopping.py): a storage that is
# retrying gives up at once instead of holding the stop for up to ``retry_s``.
_GIVE_UP = threading.Event()


def give_up_retrying(stop: bool) -> None:
    """``True``: every retrying storage call of this process gives up now (and later ones at
    their first failure); ``False``: back to retrying."""
    if stop:
        _GIVE_UP.set()
    else:
        _GIVE_UP.clear()


def _note_every(retry_s: float) -> float:
    """How often a retry says how long is left: every 30 s, more often for a short window."""
    return min(30.0, max(1.0, retry_s / 10))


TRIAL_STATES = ("COMPLETE", "RUNNING", "FAIL", "PRUNED", "WAITING")


def _count_trial_states(storage: RedactingRDBStorage, study_id: int) -> dict[str, int]:
    import sqlalchemy

    counts = {state: 0 for state in TRIAL_STATES}
    with storage.engine.connect() as connection:
        rows = connection.execute(sqlalchemy.text(
            "SELECT state, COUNT(*) FROM trials WHERE study_id = :sid GROUP BY state"),
            {"sid": study_id})
        for state, count in rows:
            counts[str(getattr(state, "name", state))] = int(count)
    return counts


def _note(line: str) -> None:
    """Say what the storage does for the user while it retries (the CLI prints it on stderr)."""
    logging.getLogger("tradetune").warning(line)


def _retried(name: str) -> Callable:
    method = getattr(optuna.storages.RDBStorage, name)

    @functools.wraps(method)
    def call(self: RedactingRDBStorage, *args: Any, **kwargs: Any) -> Any:
        return self._call(method, args, kwargs)
    return call


# Every storage operation that reaches the database: Optuna's public storage API, and the
# private ones its cache wrapper and RDBStorage call. tests/search/test_storage.py checks that
# every public method of Optuna's storages is here or in NOT_RETRIED.
RETRIED = ("create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr",
           "get_study_id_from_name", "get_study_name_from_id", "get_study_directions",
           "get_study_user_attrs", "get_study_system_attrs", "get_all_studies",
           "create_new_trial", "_create_new_trial", "set_trial_param", "_set_trial_param",
           "get_trial_param", "get_trial_params", "set_trial_state_values",
           "set_trial_intermediate_value", "set_trial_user_attr", "set_trial_system_attr",
           "get_trial_user_attrs", "get_trial_system_attrs", "get_trial_number_from_id",
           "get_trial_id_from_study_id_trial_number", "get_trial", "get_all_trials",
           "get_n_trials", "_get_trials", "get_best_trial", "_get_best_trial_id",
           "record_heartbeat", "_get_stale_trial_ids")
NOT_RETRIED = {
    "check_trial_is_updatable": "checks a state the caller passes; reads only via get_trial",
    "remove_session": "closes the session; no database round trip",
    "get_heartbeat_interval": "returns a setting of the storage object",
    "get_failed_trial_callback": "returns a setting of the storage object",
    "get_heartbeat_stale_trial_callback": "returns a setting of the storage object",
    "get_all_versions": "schema migration (optuna storage upgrade), never during a sweep",
    "get_current_version": "schema migration (optuna storage upgrade), never during a sweep",
    "get_head_version": "schema migration (optuna storage upgrade), never during a sweep",
    "upgrade": "schema migration (optuna storage upgrade), never during a sweep",
}
for _name in RETRIED:
    setattr(RedactingRDBStorage, _name, _retried(_name))


class _SchemaNotReady(RuntimeError):
    """Optuna's tables are missing or still being created by a launching driver."""


def _check_schema_ready(real_url: str, engine_kwargs: dict) -> None:
    """Readers must not write: Optuna's RDBStorage stamps a schema it finds incomplete, and a
    reader doing so while a driver creates the schema makes one of them fail. So a reader opens
    only a schema whose last creation step (the alembic stamp) is done."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(real_url, **engine_kwargs)
    try:
        with engine.connect() as connection:
            if not sqlalchemy.inspect(connection).has_table("alembic_version"):
                raise _SchemaNotReady()
            stamped = connection.execute(sqlalchemy.text(
                "SELECT COUNT(*) FROM alembic_version")).scalar()
        if not stamped:
            raise _SchemaNotReady()
    finally:
        engine.dispose()


def open_storage(url: str, create_dirs: bool = False, read_only: bool = False,
                 retry_s: float = 0.0):
    """Open ``url`` as an Optuna ``RDBStorage``; raise ``StorageError`` with one line if it
    cannot be reached. SQLite waits up to 60 s on a locked database instead of failing.
    ``read_only`` creates nothing: no SQLite file, no directory, no tables (a missing database
    or schema is a one-line error), so a reader racing a launching driver never writes to the
    schema. ``retry_s``: how long later calls retry a lost connection."""
    import sqlalchemy.exc

    path = sqlite_path(url)
    if read_only and path is not None and not path.exists():
        raise StorageError(f"no study database at {path}; launch a sweep first "
                           f"(`{LAUNCH}`) or pass {both('--storage URL', 'storage=URL')}")
    check_url(url, create_dirs and not read_only)
    real_url = _connect_url(url)
    if create_dirs and not read_only and path is not None and path.parent == results_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
    if _dialect(url) == "sqlite":
        engine_kwargs = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    try:
        if read_only:
            _check_schema_ready(real_url, engine_kwargs)
        storage = RedactingRDBStorage(real_url, engine_kwargs=engine_kwargs,
                                      skip_table_creation=read_only)
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError,
            ImportError, RuntimeError, ValueError) as exc:
        reason = _reason(exc)
        if _dialect(url) != "sqlite":
            reason = reason.replace(real_url, redact(url))
        if isinstance(exc, _SchemaNotReady):
            raise StorageError(f"storage {redact(url)} holds no studies yet; launch a sweep "
                               f"first (`{LAUNCH}`) or check "
                               f"{both('--storage URL', 'storage=URL')}") from None
        raise StorageError(f"cannot open storage {redact(url)}: {redact(reason)}") from None
    storage.display_url = redact(url)
    storage.retry_s = retry_s
    return storage


def open_existing(url: str, retry_s: float = 0.0):
    """Open a storage that must already hold studies, creating nothing: what every command
    but ``launch`` uses (``resume`` too: a missing study must not leave tables behind)."""
    return open_storage(url, read_only=True, retry_s=retry_s)


def probe(url: str) -> tuple[Any | None, str]:
    """Check that ``url`` can take a new study, creating nothing (``launch --dry-run``): the
    storage opened read-only (None when it has no database or tables yet) and a few words on
    what ``launch`` would find. Raises ``StorageError`` with one line."""
    path = sqlite_path(url)
    check_url(url, create_dirs=True)
    if path is not None and not path.exists():
        existing = path.parent
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not os.access(existing, os.W_OK):
            raise StorageError(f"cannot create the SQLite storage {path}: {existing} is not "
                               "writable")
        return None, "no database file yet (launch creates it)"
    try:
        return open_storage(url, read_only=True), "reachable"
    except StorageError as exc:
        if "holds no studies yet" not in str(exc):
            raise
        return None, "reachable, no studies yet (launch creates Optuna's tables)"
