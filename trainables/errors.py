"""TradeTune's errors: one family, no dependencies, importable from every package.

``TradeTuneError`` is the root. ``UserError`` is bad input or state the user can fix: its
message is one line that names the problem (and the fix), and the CLI prints it and exits 1
instead of a traceback. Code that is not the user's fault raises ordinary exceptions.

It lives in ``trainables/`` (not ``search/``) because ``spaces/`` and ``trainables/`` raise
these errors and must not import the service package; ``search.errors`` re-exports it.
"""
from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable


class TradeTuneError(Exception):
    """The root of every error TradeTune raises on purpose."""


class UserError(TradeTuneError):
    """Bad input or state the user can fix; the message is one line and says how."""


class ArgumentError(UserError, ValueError):
    """A function of the Python API was given a value it cannot take (e.g. ``best(k=0)``)."""


class ConfigError(UserError, ValueError):
    """The sweep config (file, --set, or env settings given to an env) is invalid."""


class DataError(UserError, ValueError):
    """Bad market data or data settings; the message names the file, column and row."""


class SpaceError(UserError, ValueError):
    """A search space or an override of it is invalid; the message names the parameter."""


class StudyError(UserError):
    """A study is missing, exists already, or does not match the config."""


class StorageError(UserError):
    """The study storage cannot be reached or used."""


class StorageUnavailable(StorageError):
    """The study storage stopped answering (and retries ran out); finished trials are safe."""


class OutputError(UserError):
    """An output folder (``--out``) cannot be written, or holds files that are not ours."""


class ClusterError(UserError):
    """The Ray cluster cannot be reached, or no node of it can run one trial."""


class SweepFailed(UserError):
    """The sweep ran but no trial of it completed."""


def did_you_mean(word: object, choices: Iterable[object], *, template: str = "; did you mean {}?",
                 n: int = 1, cutoff: float = 0.6,
                 spell: Callable[[str], str] = repr) -> str:
    """A hint naming the closest of ``choices`` to a mistyped ``word``, or "" when none is close.

    ``template`` places the suggestions (``spell`` of each, comma-separated) in the message, e.g.
    ``"unknown key 'trian'; did you mean 'train'?"``."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=n, cutoff=cutoff)
    return template.format(", ".join(spell(c) for c in close)) if close else ""
