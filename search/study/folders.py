"""A study's folder on disk, and whose it is: the one rule of study identity outside the database.

A study is known by its name only inside its storage: two studies may share a name in two
storages (the default SQLite file and ``--storage sqlite:///other.db``, or a PostgreSQL one),
while the results directory is one. So each study owns one folder under it, and the folder
says whose it is:

- ``launch`` gives every study a random id (study attribute ``tradetune_uid``) and claims
  ``$TRADETUNE_RESULTS/NAME`` for it, or ``NAME-<first 8 hex of the id>`` when ``NAME`` is
  another study's (or a folder of unknown owner); it writes the marker ``.tradetune-study.json``
  (name, id, storage with its password masked) before any trial runs, and records the folder
  on the study (``tradetune_results``);
- every command that writes into the folder (``resume``, ``promote``) checks the marker first
  and refuses, in one line, a folder that is another study's;
- ``delete`` removes the folder only when its marker names the study being deleted; any other
  folder is left where it is, and the command says so.

A study launched before ids existed has no id: its folder is adopted (marked) by its first
``resume`` when the folder carries no marker, and ``delete`` leaves an unmarked folder alone.
"""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from search.errors import StudyError
from search.study.schema import ATTR_RESULTS, ATTR_UID
from search.study.storage import redact, results_dir, under_results

MARKER = ".tradetune-study.json"


def new_uid() -> str:
    """A study's id: 16 hex digits, unique across storages for all practical purposes."""
    return secrets.token_hex(8)


def owner(folder: Path) -> dict[str, Any] | None:
    """What the marker of ``folder`` says (``study``, ``uid``, ``storage``), or None when the
    folder has no readable marker."""
    try:
        data = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("uid"), str) else None


def describe_owner(mark: dict[str, Any] | None) -> str:
    """Whose a folder is, for a message: "study 'qs1' in sqlite:///other.db" or "no study's
    marker"."""
    if mark is None:
        return "a folder TradeTune did not mark as a study's"
    return f"study {mark.get('study')!r} in {mark.get('storage') or 'another storage'}"


def folder_for(name: str, uid: str) -> tuple[Path, dict[str, Any] | None]:
    """The folder ``launch`` uses for a new study: ``NAME`` when it does not exist or is this
    study's, else ``NAME-<id>``; with the marker of the ``NAME`` folder it could not take."""
    plain = results_dir() / name
    if not plain.exists() and not plain.is_symlink():
        return plain, None
    mark = owner(plain)
    if mark is not None and mark["uid"] == uid:
        return plain, None
    return results_dir() / f"{name}-{uid[:8]}", mark


def claim(folder: Path, name: str, uid: str, url: str) -> None:
    """Create ``folder`` (if missing) and mark it as the study's; refuse a folder that another
    study marked first (two launches racing for one name). The marker is created exclusively,
    so of two claimers exactly one wins."""
    mark = {"study": name, "uid": uid, "storage": redact(url)}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Written whole beside it, then linked into place: a reader never sees half a marker,
        # and of two claimers exactly one link succeeds.
        draft = folder / f".{MARKER}.{uid}.{os.getpid()}"
        draft.write_text(json.dumps(mark))
        try:
            os.link(draft, folder / MARKER)
        except FileExistsError:
            raise
        except OSError:  # a file system without hard links: an exclusive create instead
            with open(folder / MARKER, "x") as handle:
                json.dump(mark, handle)
        finally:
            draft.unlink()
    except FileExistsError:
        found = owner(folder)
        if found is None or found["uid"] != uid:
            raise StudyError(f"results folder {folder} belongs to {describe_owner(found)}; "
                             "launch again (a new study takes a folder of its own)") from None
    except OSError as exc:
        raise StudyError(f"results directory {folder} is not writable "
                         f"({exc.strerror or exc}); set TRADETUNE_RESULTS to a writable "
                         "directory") from None


def claim_new(name: str, uid: str, url: str) -> tuple[Path, dict[str, Any] | None]:
    """Claim the folder of a new study (``folder_for``, then ``claim``); if another launch
    marked ``NAME`` between the look and the claim, take ``NAME-<id>``. Returns the folder and
    the marker of the ``NAME`` folder it could not take (None when it took ``NAME``)."""
    folder, taken = folder_for(name, uid)
    try:
        claim(folder, name, uid, url)
    except StudyError:
        if folder.name != name:
            raise
        taken, folder = owner(folder), results_dir() / f"{name}-{uid[:8]}"
        claim(folder, name, uid, url)
    return folder, taken


def release(folder: Path, uid: str) -> None:
    """Undo ``claim`` when the study could not be created: the marker goes, and the folder too
    if nothing else is in it."""
    mark = owner(folder)
    if mark is None or mark["uid"] != uid:
        return
    try:
        (folder / MARKER).unlink()
        folder.rmdir()
    except OSError:
        pass


def study_folder(study: Any) -> Path:
    """Where a study's experiments and checkpoints live: the folder recorded at launch, or (for
    studies launched before it was recorded) the study's folder in today's results directory."""
    recorded = study.user_attrs.get(ATTR_RESULTS)
    return under_results(recorded) if recorded else results_dir() / study.study_name


def check_owned(study: Any, url: str, adopt: bool = True) -> Path:
    """The study's folder, checked before anything writes into it: it must be unmarked or
    marked as this study's. With ``adopt``, a folder without a marker (a study launched before
    markers existed, or a folder removed by hand) is marked as this study's (created if
    missing, and the study given an id if it has none). Several drivers resuming such a study
    at once race to mark it: one marker wins, and the others take its id, since it names the
    same study in the same storage. Raises ``StudyError`` for another study's folder."""
    folder = study_folder(study)
    uid = study.user_attrs.get(ATTR_UID)
    mark, unreadable = owner(folder), False
    if mark is None and (folder / MARKER).exists():
        mark = owner(folder)  # marked by another driver between the two looks
        unreadable = mark is None  # there, and no marker that reads: not a study's of ours
    adopted = (uid is None and mark is not None and mark.get("study") == study.study_name
               and mark.get("storage") == redact(url))
    if mark is not None and (mark["uid"] == uid or adopted):
        if adopted and adopt:
            study.set_user_attr(ATTR_UID, mark["uid"])
        return folder
    if mark is None and not unreadable:
        if not adopt:
            return folder
        chosen = uid or new_uid()
        try:
            claim(folder, study.study_name, chosen, url)
        except StudyError:
            if not (folder / MARKER).exists():
                raise  # the folder cannot be written
            return check_owned(study, url, adopt)  # another driver marked it a moment ago
        if uid is None:
            study.set_user_attr(ATTR_UID, chosen)
        return folder
    raise StudyError(f"results folder {folder} of study {study.study_name!r} belongs to "
                     f"{describe_owner(mark)}; nothing was written there. Launch this study's "
                     "sweep again under a new name, or restore the folder's marker "
                     f"({MARKER}) if it was changed by hand")


def removable(study: Any) -> tuple[Path, str | None]:
    """The study's folder and, when ``delete`` must leave it, why (None: it is this study's
    and may go). Only a folder whose marker names this study is removed."""
    folder = study_folder(study)
    if not folder.exists() and not folder.is_symlink():
        return folder, "it does not exist"
    if folder.is_symlink() or not folder.is_dir():
        return folder, "it is not a folder TradeTune made"
    mark = owner(folder)
    uid = study.user_attrs.get(ATTR_UID)
    if mark is None:
        return folder, ("it carries no study marker (a study launched before markers existed, "
                        "or a folder made by hand); remove it yourself if it is this study's")
    if uid is None or mark["uid"] != uid:
        return folder, f"it belongs to {describe_owner(mark)}"
    return folder, None


def is_marked(path: Path) -> bool:
    """Whether ``path`` is a study's folder (it holds a marker): no command's output goes
    there."""
    return os.path.isfile(path / MARKER)
