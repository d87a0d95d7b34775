"""The write-path rule: every file and folder a command writes for the user, and nothing else.

No command overwrites or deletes a file it did not write for that study:

- the study storage's own files (a SQLite database, its journal, WAL and shared-memory files,
  its claim lock), of the study's storage and of the default one, are never written, replaced
  or removed, ``--force`` or not;
- a study's results folder (``search/study/folders.py``: it carries a marker) is never an
  output target, nor anything inside it: its checkpoints are the study's own;
- an output file (``evaluate --actions FILE``) is written only where no file is, or with
  ``--force`` over a plain file; never over a folder or a link;
- an output folder (``export``/``report --out DIR``) is new, empty, or an earlier output of the
  same kind of the same study; another folder only with ``--force``, and even then only the
  command's listed names are replaced. The new output is written into a hidden folder beside the
  target and only then moved in, name by name, replacing exactly the listed names (also those
  this run does not write, so nothing of an earlier output survives beside the new one).

A failure at any point leaves the target as it was. Everything a command writes for the user
goes through ``write_file`` or ``write_folder``; promotions write only inside the study's own
folder (checked by ``search/study/folders.py``).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Callable, Sequence

from search.errors import OutputError, both
from search.study.claims import LOCK_SUFFIX
from search.study.folders import is_marked
from search.study.storage import resolve_url, sqlite_path

OUT = both("--out", "out")  # the option every output folder is given by


def write_folder(out: Path, names: Sequence[str], write: Callable[[Path], None], *,
                 ours: Callable[[Path], bool], force: bool, what: str,
                 storage_url: str) -> list[str]:
    """Write an output folder safely; return the names it now holds from this run, sorted.

    Args:
        out: the folder the user named; created (with its parents) if missing.
        names: every file or folder name the command may write; all of them are replaced in
            ``out``, none other is touched. ``write`` may write any subset of them.
        write: writes the output into the empty folder it is given.
        ours: whether an existing, non-empty ``out`` is an earlier output that may be replaced
            without ``force`` (e.g. an export of the same study).
        force: replace the listed names even in a folder that ``ours`` does not recognise.
        what: what ``ours`` recognises, for the refusal, e.g. "an earlier export of study 'x'".
        storage_url: the study's storage, whose files are never replaced.

    Raises:
        OutputError: ``out`` is a file, cannot be written, or holds other files (without
            ``force``); nothing was changed.
    """
    out = Path(out)
    for path in (out, *(out / name for name in names)):
        _refuse_protected(path, storage_url, OUT, out)
    _check_target(out, names, ours, force, what)
    created = _first_missing(out.parent)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = _make_hidden_sibling(out, "new")
    except OSError as exc:
        _remove_empty_parents(out.parent, created)
        raise _cannot_write(out, exc, None) from None
    try:
        write(staging)
        written = sorted(os.listdir(staging))
        unlisted = set(written) - set(names)
        if unlisted:  # a new file must be added to ``names``, or a later run would leave it stale
            raise RuntimeError(f"output names {sorted(unlisted)} are not in the list of names "
                               "this command replaces")
        if out.exists():
            _swap_in(staging, out, names, written)
        else:
            os.rename(staging, out)
    except OSError as exc:
        raise _cannot_write(out, exc, staging) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        _remove_empty_parents(out.parent, created)
    return written


def write_file(path: Path, write: Callable[[Path], None], *, force: bool, option: str,
               storage_url: str) -> None:
    """Write one output file (``option`` names it for messages, e.g. ``--actions``): into a
    hidden file beside it, then moved in, so a failed write leaves what was there.

    Raises:
        OutputError: the path is a folder, a link, a storage file or inside a study's folder;
            or a file is there and ``force`` is not given. Nothing was changed.
    """
    path = Path(path)
    check_file(path, force=force, option=option, storage_url=storage_url)
    created = _first_missing(path.parent)
    staging = path.with_name(f".{path.name}.tradetune-new-{uuid.uuid4().hex[:8]}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(staging)
        os.replace(staging, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            staging.unlink()
        _remove_empty_parents(path.parent, created)
        raise OutputError(f"cannot write {option} {path}: {exc.strerror or exc}") from None


def check_file(path: Path, *, force: bool, option: str, storage_url: str) -> None:
    """``write_file``'s refusals, alone: a command checks its output path this way before it
    does any work (and before it looks at the test split)."""
    _refuse_protected(path, storage_url, option, path)
    if path.is_symlink() or path.is_dir():
        raise OutputError(f"{option} {path} is a {'link' if path.is_symlink() else 'directory'}; "
                          "give a file name such as actions.csv")
    if path.exists() and not force:
        raise OutputError(f"{option} {path} exists and was not written by this command for "
                          f"this study; give a new file name, or add "
                          f"{both('--force', 'force=True')} to replace it")
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise OutputError(f"{option} {path} cannot be created: {blocking} is a file")


def protected_files(storage_url: str) -> list[Path]:
    """The files of the study's storage and of the default storage: never an output."""
    found = []
    for url in {storage_url, resolve_url()}:
        database = sqlite_path(url)
        if database is not None:
            found += [database.with_name(database.name + suffix)
                      for suffix in ("", "-journal", "-wal", "-shm", LOCK_SUFFIX)]
    return found


def _refuse_protected(path: Path, storage_url: str, option: str, given: Path) -> None:
    """Refuse an output path that is a storage file, or a study's folder or inside one."""
    real = Path(os.path.realpath(path))
    if any(real == Path(os.path.realpath(p)) for p in protected_files(storage_url)):
        raise OutputError(f"{option} {given} is a study storage file ({real}); TradeTune never "
                          "writes over it, even with --force; give another path")
    for folder in (real, *real.parents):
        if is_marked(folder):
            raise OutputError(f"{option} {given} is inside the results folder of a study "
                              f"({folder}); its files are the study's own; give a path outside "
                              "it")


def _check_target(out: Path, names: Sequence[str], ours: Callable[[Path], bool], force: bool,
                  what: str) -> None:
    if out.is_symlink() and not out.exists():
        raise OutputError(f"{OUT} {out} is a broken symbolic link; give a folder")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{OUT} {out} is a file; give a folder (it is created if missing)")
    if not out.is_dir():
        blocking = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            raise OutputError(f"{OUT} {out} cannot be created: {blocking} is a file; give a "
                              "folder")
        return
    try:
        present = sorted(os.listdir(out))
    except OSError as exc:
        raise _cannot_write(out, exc, None) from None
    if not present or force or ours(out):
        return
    shown = ", ".join(present[:3]) + (f" and {len(present) - 3} more" if len(present) > 3
                                      else "")
    raise OutputError(f"{OUT} {out} holds other files ({shown}) and is not {what}; give a new "
                      f"or empty folder, or add {both('--force', 'force=True')} to replace "
                      "only the names this command "
                      f"writes ({', '.join(names)})")


def _swap_in(staging: Path, out: Path, names: Sequence[str], written: list[str]) -> None:
    """Move every listed name of ``out`` aside, the new ones in, then drop the old ones; on an
    error, put the old ones back."""
    old = _make_hidden_sibling(out, "old")
    moved_old: list[str] = []
    moved_new: list[str] = []
    try:
        for name in names:
            if os.path.lexists(out / name):
                os.rename(out / name, old / name)
                moved_old.append(name)
        for name in written:
            os.rename(staging / name, out / name)
            moved_new.append(name)
    except OSError:
        for name in moved_new:
            os.rename(out / name, staging / name)
        for name in moved_old:
            os.rename(old / name, out / name)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def _make_hidden_sibling(out: Path, kind: str) -> Path:
    """An empty hidden folder beside ``out`` on the same file system (renames stay atomic);
    made with ``mkdir`` so it gets the user's umask, not a private mode."""
    real = out.resolve()
    path = real.parent / f".{real.name}.tradetune-{kind}-{uuid.uuid4().hex[:8]}"
    os.mkdir(path)
    return path


def _first_missing(path: Path) -> Path | None:
    """The outermost ancestor of ``path`` (or itself) that does not exist yet."""
    missing = None
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
        missing = candidate
    return missing


def _remove_empty_parents(path: Path, stop: Path | None) -> None:
    """Undo ``mkdir(parents=True)`` up to ``stop`` where those folders are still empty."""
    if stop is None:
        return
    for candidate in (path, *path.parents):
        try:
            candidate.rmdir()
        except OSError:
            return
        if candidate == stop:
            return


def _cannot_write(out: Path, exc: OSError, staging: Path | None) -> OutputError:
    """One line for a failed write, naming the file as the user will know it (a file in the
    hidden staging folder by its place in ``out``; the staging folder itself not at all)."""
    reason = exc.strerror or str(exc)
    name = str(exc.filename or "")
    if staging is not None and name.startswith(str(staging)):
        name = str(out) + name[len(str(staging)):]
    if ".tradetune-new-" in name or ".tradetune-old-" in name:
        name = ""  # our own hidden folder beside ``out``: the user knows it as ``out``
    where = f" ({name})" if name and Path(name) != out else ""
    return OutputError(f"cannot write {OUT} {out}: {reason}{where}; give a folder you can write")
