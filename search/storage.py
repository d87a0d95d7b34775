"""Storage URLs: the one place they are resolved, redacted and opened as Optuna storages.

Precedence: ``--storage`` > ``TRADETUNE_STORAGE`` > the config's ``storage`` > a SQLite file in
the results directory. A password can stay out of every file: use ``PGPASSWORD``, ``~/.pgpass``
(both read by libpq), or write ``${VAR}`` in the URL, expanded only when connecting.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import optuna

from search.errors import StorageError

RESULTS_ENV = "TRADETUNE_RESULTS"
STORAGE_ENV = "TRADETUNE_STORAGE"
DEFAULT_DB = "tradetune.db"
SUPPORTED = ("sqlite", "postgresql", "postgres", "mysql")
_PASSWORD = re.compile(r"(?P<head>://[^:/@]+:)(?P<password>[^@]*)(?P<tail>@)")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def results_dir() -> Path:
    """Where experiments, checkpoints and the default study database live."""
    return Path(os.environ.get(RESULTS_ENV) or Path.home() / "tradetune_results").expanduser()


def resolve_url(cli_url: str | None = None, config_url: str | None = None) -> str:
    """The storage URL to use, as written by the user (``${VAR}`` references unexpanded)."""
    url = cli_url or os.environ.get(STORAGE_ENV) or config_url
    if url:
        return str(url)
    return f"sqlite:///{results_dir() / DEFAULT_DB}"


def redact(url: str) -> str:
    """The URL with any literal password replaced by ``***``: safe to print and store."""
    return _PASSWORD.sub(lambda m: f"{m['head']}***{m['tail']}", str(url))


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
    return url.split(":", 1)[0].split("+", 1)[0].lower() if ":" in url else ""


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (None for other backends or in-memory)."""
    if _scheme(url) != "sqlite":
        return None
    path = url.split(":///", 1)[1] if ":///" in url else ""
    return Path(path) if path and path != ":memory:" else None


def check_url(url: str, create_dirs: bool = False) -> None:
    """Reject unsupported schemes and SQLite files in missing directories, before connecting."""
    scheme = _scheme(url)
    if scheme not in SUPPORTED:
        raise StorageError(f"unsupported storage URL {redact(url)!r}: use sqlite:///PATH or "
                           "postgresql://USER@HOST:PORT/DB")
    path = sqlite_path(url)
    if path is not None:
        if create_dirs and path.parent == results_dir():
            path.parent.mkdir(parents=True, exist_ok=True)
        if not path.parent.is_dir():
            raise StorageError(f"SQLite storage directory {path.parent} does not exist")


class RedactingRDBStorage(optuna.storages.RDBStorage):
    """An RDBStorage that drops its URL's password when pickled (Tune pickles its searcher,
    and with it this storage, into the experiment directory)."""

    display_url = ""

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["url"] = self.display_url
        state["engine_kwargs"] = {}
        return state


def open_storage(url: str, create_dirs: bool = False, read_only: bool = False):
    """Open ``url`` as an Optuna ``RDBStorage``; raise ``StorageError`` with one line if it
    cannot be reached. SQLite waits up to 60 s on a locked database instead of failing.
    ``read_only`` skips creating Optuna's tables, so a reader racing a launching driver never
    writes to the schema."""
    import sqlalchemy.exc

    check_url(url, create_dirs)
    real_url = _expand(url)
    if _scheme(url) == "sqlite":
        engine_kwargs = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    try:
        storage = RedactingRDBStorage(real_url, engine_kwargs=engine_kwargs,
                                      skip_table_creation=read_only)
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, RuntimeError, ValueError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        reason = reason[0] if reason else type(exc).__name__
        if _scheme(real_url) != "sqlite":
            reason = reason.replace(real_url, redact(url))
        raise StorageError(f"cannot open storage {redact(url)}: {redact(reason)}") from None
    storage.display_url = redact(url)
    return storage
