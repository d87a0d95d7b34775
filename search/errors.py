"""Errors a user can fix. The CLI prints them as one line and exits 1."""
from __future__ import annotations


class UserError(Exception):
    """Bad input or state the user can fix; the message is one line and says how."""


class ConfigError(UserError):
    """The sweep config (file or --set) is invalid."""


class StorageError(UserError):
    """The study storage cannot be reached or used."""


class StudyError(UserError):
    """A study is missing, exists already, or does not match the config."""


class StorageUnavailable(StorageError):
    """The study storage stopped answering (and retries ran out); finished trials are safe."""


class ClusterError(UserError):
    """The Ray cluster cannot be reached, or no node of it can run one trial."""


class SweepFailed(UserError):
    """The sweep ran but no trial of it completed."""


class OutputError(UserError):
    """An output folder (``--out``) cannot be written, or holds files that are not ours."""
