"""Early stopping and seed derivation: pure code, tested without Ray."""
from __future__ import annotations

import hashlib

import pytest

from trainables.early_stopping import EarlyStopping
from trainables.seeds import promotion_seed, run_seed, trial_seed


def verdicts(stopper: EarlyStopping, scores: list[float]) -> list[tuple[bool, bool, str | None]]:
    return [(v.improved, v.stop, v.reason) for v in map(stopper.observe, scores)]


def test_stops_after_patience_evaluations_without_improvement():
    stopper = EarlyStopping(patience=2, min_evals=1)
    assert verdicts(stopper, [1.0, 0.5, 2.0, 2.0, 1.0]) == [
        (True, False, None), (False, False, None), (True, False, None),
        (False, False, None), (False, True, "patience")]
    assert stopper.state() == {"best": 2.0, "evals": 5, "stale_evals": 2}


def test_min_evals_holds_patience_back():
    stopper = EarlyStopping(patience=1, min_evals=3)
    assert [v.stop for v in map(stopper.observe, [1.0, 0.0, 0.0])] == [False, False, True]


def test_no_patience_never_stops_but_still_reports_improvements():
    stopper = EarlyStopping(patience=None, min_evals=0)
    assert verdicts(stopper, [1.0, 0.0, 0.0, 0.0, 0.0, 2.0]) == [
        (True, False, None), *[(False, False, None)] * 4, (True, False, None)]


def test_an_improvement_must_beat_the_best_by_more_than_min_delta():
    stopper = EarlyStopping(patience=5, min_evals=1, min_delta=0.1)
    assert [v.improved for v in map(stopper.observe, [1.0, 1.1, 1.11, 1.2])] == [
        True, False, True, False]
    assert stopper.best == 1.11
    # The first score always counts, however large min_delta.
    assert EarlyStopping(patience=1, min_evals=1, min_delta=1e9).observe(-50.0).improved


@pytest.mark.parametrize("cut", range(1, 6))
def test_a_restart_from_saved_state_decides_as_an_uninterrupted_run(cut):
    scores = [1.0, 0.5, 0.7, 2.0, 1.5, 1.8]
    whole = verdicts(EarlyStopping(patience=3, min_evals=2, min_delta=0.05), scores)
    first = EarlyStopping(patience=3, min_evals=2, min_delta=0.05)
    before = verdicts(first, scores[:cut])
    restarted = EarlyStopping(patience=3, min_evals=2, min_delta=0.05, state=first.state())
    assert before + verdicts(restarted, scores[cut:]) == whole


def _sha_seed(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def test_the_seed_derivations_are_the_ones_studies_were_run_with():
    """Stored studies record these seeds: one function derives them all, unchanged."""
    for sweep_seed, number in [(42, 0), (42, 7), (0, 123)]:
        seed = trial_seed(sweep_seed, number)
        assert seed == _sha_seed(f"{sweep_seed}:{number}")
        assert run_seed(seed, 0) == seed and run_seed(None, 3) is None
        assert run_seed(seed, 2) == _sha_seed(f"{seed}:seed2")
        assert promotion_seed(sweep_seed, number, 5) == _sha_seed(
            f"{sweep_seed}:promote:{number}:5")
