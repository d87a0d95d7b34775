"""Shared fixtures: one Ray runtime per test session, a private results dir per test."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COINBASE = REPO / "examples" / "data" / "Coinbase_BTCUSD_1h.csv.gz"  # shipped: never skipped

warnings.filterwarnings("ignore", category=DeprecationWarning)
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")


@pytest.fixture(scope="session")
def ray_session():
    """The test session's single local Ray runtime (2 CPUs, no dashboard)."""
    import logging

    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR,
                 log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def results_dir(tmp_path, monkeypatch) -> Path:
    """TRADETUNE_RESULTS pointed at a fresh directory; storage env cleared."""
    path = tmp_path / "results"
    monkeypatch.setenv("TRADETUNE_RESULTS", str(path))
    monkeypatch.delenv("TRADETUNE_STORAGE", raising=False)
    return path


@pytest.fixture
def coinbase_csv() -> Path:
    """The real hourly BTC/USD file that ships in examples/data/."""
    assert COINBASE.is_file(), f"{COINBASE} is part of the repository and must be there"
    return COINBASE


@pytest.fixture
def tiny_sweep():
    """Factory: a validated sweep config small enough to train in seconds, plus ``--set``
    style changes, e.g. ``tiny_sweep(**{"training.max_iterations": 6})``."""
    return make_tiny_sweep


def make_tiny_sweep(**changes) -> dict:
    from search.config.sweep_config import load_config

    sets = [
        "study=tiny", "data.synthetic={n_bars: 1500, seed: 7, freq: 1h}",
        "search.space_overrides={train_batch_size: 200, num_minibatches: 2, num_epochs: 2, "
        "hidden_width: 16, hidden_layers: 1, window_size: {low: 5, high: 8}}",
        "search.enqueue_tutorial=false", "search.num_samples=2",
        "training.max_iterations=4", "training.eval_every=1", "training.patience=2",
        "training.min_evals=2", "training.envs_per_runner=1",
        "search.scheduler=none",  # every trial runs its course unless a test asks for a scheduler
    ]
    sets += [f"{k}={v}" for k, v in changes.items()]
    return load_config(None, sets)
