"""Every seed TradeTune derives, from one function: a trial's seed, the seeds of a trial's
repeated runs, and the fresh seeds of a promotion.

Seeds are hashed (SHA-256) from their parts rather than drawn from a generator, so any trial,
run or promotion can be rerun on its own, on any machine and Python version, with the same
seed. They are 32-bit, the range RLlib and numpy accept.
"""
from __future__ import annotations

import hashlib


def derive_seed(*parts: object) -> int:
    """A 32-bit seed from ``parts``, joined with ``:`` and hashed."""
    digest = hashlib.sha256(":".join(str(part) for part in parts).encode()).hexdigest()
    return int(digest[:8], 16)


def trial_seed(sweep_seed: int, trial_number: int) -> int:
    """A seed derived from the sweep seed and the trial number, so any trial can be rerun."""
    return derive_seed(sweep_seed, trial_number)


def run_seed(trial_seed: int | None, seed_index: int) -> int | None:
    """The seed of a trial's run ``seed_index`` (``training.seeds``); index 0 is the trial seed
    itself, so a one-run trial trains as it always did."""
    if trial_seed is None or seed_index == 0:
        return trial_seed
    return derive_seed(trial_seed, f"seed{seed_index}")


def promotion_seed(sweep_seed: int, trial_number: int, candidate: int) -> int:
    """The ``candidate``-th seed ``promote`` considers for a trial (search/sweep/promote.py keeps the
    ones far enough from every seed the study used)."""
    return derive_seed(sweep_seed, "promote", trial_number, candidate)
