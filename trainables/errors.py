"""TradeTune's errors: one family, no dependencies, importable from every package.

``TradeTuneError`` is the root. ``UserError`` is bad input or state the user can fix: its
message is one line that names the problem (and the fix), and the CLI prints it and exits 1
instead of a traceback. Code that is not the user's fault raises ordinary exceptions.

A message has two readers: a Python caller and a person at the ``tradetune`` command. Where it
names an option or a command, it names it both ways (``both("--trial", "trial")``): the error
itself reads in the Python API's terms, and ``cli_message`` in the command line's.

It lives in ``trainables/`` (not ``search/``) because ``spaces/`` and ``trainables/`` raise
these errors and must not import the service package; ``search.errors`` re-exports it.
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable

_BOTH = re.compile("\u27e8([^\u27e9|]*)\\|([^\u27e9]*)\u27e9")


def both(cli: str, api: str) -> str:
    """A phrase the ``tradetune`` command says as ``cli`` and the Python API as ``api``, e.g.
    ``both("--trial", "trial")`` or ``both("tradetune resume --study s", "resume('s')")``."""
    return f"\u27e8{cli}|{api}\u27e9"


def for_api(text: str) -> str:
    """``text`` with each ``both`` phrase in the Python API's words."""
    return _BOTH.sub(r"\2", text)


def for_cli(text: str) -> str:
    """``text`` with each ``both`` phrase in the ``tradetune`` command's words."""
    return _BOTH.sub(r"\1", text)


class TradeTuneError(Exception):
    """The root of every error TradeTune raises on purpose. Its message reads in the Python
    API's terms; ``cli_message`` is the same message in the command line's."""

    def __init__(self, *args: object) -> None:
        text = args[0] if args and isinstance(args[0], str) else None
        super().__init__(*((for_api(text), *args[1:]) if text is not None else args))
        self.cli_message = for_cli(text) if text is not None else str(self)

    def __reduce__(self) -> tuple:  # an error raised in a Ray worker keeps both wordings
        return _restore, (type(self), self.args, self.cli_message)


def _restore(cls: type, args: tuple, cli_message: str) -> TradeTuneError:
    error = cls(*args)
    error.cli_message = cli_message
    return error


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


class PromotionError(UserError):
    """A promotion cannot be run as asked (bad seeds, a trial that did not complete, a fresh
    seed's run that failed)."""


def did_you_mean(word: object, choices: Iterable[object], *, template: str = "; did you mean {}?",
                 n: int = 1, cutoff: float = 0.6,
                 spell: Callable[[str], str] = repr) -> str:
    """A hint naming the closest of ``choices`` to a mistyped ``word``, or "" when none is close.

    ``template`` places the suggestions (``spell`` of each, comma-separated) in the message, e.g.
    ``"unknown key 'trian'; did you mean 'train'?"``."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=n, cutoff=cutoff)
    return template.format(", ".join(spell(c) for c in close)) if close else ""
