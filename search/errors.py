"""The error family, under the name the service's callers know (defined in trainables.errors)."""
from trainables.errors import (  # noqa: F401  (re-exported)
    ArgumentError,
    ClusterError,
    ConfigError,
    DataError,
    OutputError,
    SpaceError,
    StorageError,
    StorageUnavailable,
    StudyError,
    SweepFailed,
    TradeTuneError,
    UserError,
    did_you_mean,
)
