"""Process-wide settings changed for one block and put back after it.

TradeTune is a library as well as a command: a notebook that runs a sweep keeps its own
logging levels, Optuna's verbosity and its environment variables once the sweep returns. Every
change the library makes to them goes through these blocks.
"""
from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping


@contextlib.contextmanager
def logger_levels(levels: Mapping[str, int]) -> Iterator[None]:
    """Set the level of each named logger for the block; restore the levels it had."""
    loggers = {name: logging.getLogger(name) for name in levels}
    before = {name: logger.level for name, logger in loggers.items()}
    for name, logger in loggers.items():
        logger.setLevel(levels[name])
    try:
        yield
    finally:
        for name, logger in loggers.items():
            logger.setLevel(before[name])


@contextlib.contextmanager
def env_defaults(values: Mapping[str, str]) -> Iterator[None]:
    """Set each environment variable the user has not set, for the block only."""
    added = [name for name in values if name not in os.environ]
    for name in added:
        os.environ[name] = values[name]
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


@contextlib.contextmanager
def optuna_quiet() -> Iterator[None]:
    """Optuna logs each study it creates or loads at INFO; the library prints nothing."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(min(max(verbosity, optuna.logging.WARNING),
                                     optuna.logging.CRITICAL))
    try:
        yield
    finally:
        optuna.logging.set_verbosity(verbosity)
