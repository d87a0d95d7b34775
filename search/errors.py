"""The error family, under the name the service's callers know (defined in trainables.errors),
and ``both``: how a message names an option or a command for both of its readers."""
from trainables.errors import (  # noqa: F401  (re-exported)
    ArgumentError,
    ClusterError,
    ConfigError,
    DataError,
    OutputError,
    PromotionError,
    SpaceError,
    StorageError,
    StorageUnavailable,
    StudyError,
    SweepFailed,
    TradeTuneError,
    UserError,
    both,
    did_you_mean,
)
