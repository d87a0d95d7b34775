"""What a sweep (or a promotion) says while it runs, and what a sweep returns when it ends.

The sweep code prints nothing itself: each line a person would read is a ``ProgressEvent``
handed to the caller's ``progress`` callback (the CLI prints it; a program may log it, show it
in a notebook or ignore it). Light on purpose: importing this module imports no ray or torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from trainables.errors import for_api, for_cli

# The kinds of event, and what each says:
#   launched        the study was created; the sweep starts
#   resuming        a stopped study continues with its remaining budget
#   ray_logs        where Ray keeps the trials' worker logs
#   progress        the periodic line: trials done/running/failed, best value, time left
#   trial_failed    a trial failed (its one-line reason)
#   trial_retrying  a trial failed and is retried from its last checkpoint
#   nothing_to_run  the study's budget is already done or taken by another driver
#   finished        the sweep ran its budget
#   interrupted     a stop signal ended the sweep; the line says how to resume
#   stopped         a stop signal came before anything was stored or started
#   promoting       a promotion starts training its fresh seeds
#   note            something left out of a result, and why (e.g. a report without equity)
EVENT_KINDS = ("launched", "resuming", "ray_logs", "progress", "trial_failed", "trial_retrying",
               "nothing_to_run", "finished", "interrupted", "stopped", "promoting", "note")


@dataclass(frozen=True)
class ProgressEvent:
    """One thing that happened, as a line a person can read (``message``) and its ``kind``
    (see ``EVENT_KINDS``) for a program to tell them apart. ``message`` names what to do next
    in the Python API's terms, ``cli_message`` in the ``tradetune`` command's (see
    ``trainables.errors.both``)."""

    kind: str
    message: str
    cli_message: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "cli_message", for_cli(self.cli_message or self.message))
        object.__setattr__(self, "message", for_api(self.message))

    def __str__(self) -> str:
        return self.message


ProgressCallback = Callable[[ProgressEvent], None]


def no_progress(event: ProgressEvent) -> None:
    """The default ``progress``: say nothing."""


# Why a sweep ended (``SweepResult.reason``).
COMPLETED = "completed"             # it ran its budget (at least one trial completed)
NOTHING_TO_RUN = "nothing_to_run"   # resume: the budget was already done or taken elsewhere
STOPPED = "stopped"                 # a stop signal (Ctrl-C, SIGTERM, SIGHUP); resume continues


@dataclass(frozen=True)
class SweepResult:
    """How a ``launch`` or ``resume`` ended, with the study's figures at that moment.

    A sweep whose trials all failed raises ``SweepFailed`` and one whose storage stopped
    answering raises ``StorageUnavailable`` instead (both ``UserError``): then there is no
    finished sweep to describe, and the message says how to continue."""

    study: str
    storage: str                    # the storage URL, its password masked
    reason: str                     # COMPLETED, NOTHING_TO_RUN or STOPPED
    counts: dict[str, int] = field(default_factory=dict)  # trials by state, every driver's
    best_value: float | None = None
    best_trial: int | None = None
    signal: int | None = None       # the stop signal's number when reason is STOPPED

    @property
    def stopped(self) -> bool:
        return self.reason == STOPPED
