"""Warm start from an earlier study: its best parameter sets are the new study's first trials."""
from __future__ import annotations

import json
import subprocess

import pytest

from conftest import make_tiny_sweep
from sweep_helpers import REPO, TRADETUNE, add_study, cli_env, write_config


def _run(args, results):
    return subprocess.run([*TRADETUNE, *args], cwd=REPO, env=cli_env(results), text=True,
                          capture_output=True, timeout=300)


@pytest.fixture
def january(tmp_path, monkeypatch):
    """Study 'jan' (PPO, three COMPLETE trials) and a config for February's sweep."""
    results = tmp_path / "results"
    monkeypatch.setenv("TRADETUNE_RESULTS", str(results))
    add_study(f"sqlite:///{results / 'tradetune.db'}", results, "jan", [0.5, 2.0, 1.0])
    config = make_tiny_sweep(**{"study": "feb", "search.num_samples": 2,
                                "training.max_iterations": 1})
    config.pop("storage", None)
    return results, write_config(tmp_path / "feb.yaml", config)


def test_dry_run_says_what_a_warm_start_queues(january):
    results, config = january
    done = _run(["launch", str(config), "--warm-start-from", "jan", "--top", "2", "--dry-run"],
                results)
    assert done.returncode == 0, done.stderr
    assert "# warm start: queued the 2 best parameter set(s) of study 'jan'" in done.stdout
    assert "warm_start:\n    study: jan\n    top: 2" in done.stdout


def test_parameters_outside_the_new_space_are_dropped_with_a_note(january, tmp_path):
    results, _ = january
    narrower = make_tiny_sweep(**{"study": "feb", "search.warm_start": "{study: jan, top: 3}",
                                  "search.space_overrides": "{train_batch_size: 200, "
                                  "num_minibatches: 2, num_epochs: 2, hidden_width: 16, "
                                  "hidden_layers: 1, window_size: {low: 20, high: 30}}"})
    done = _run(["launch", str(write_config(tmp_path / "n.yaml", narrower)), "--dry-run"],
                results)
    assert done.returncode == 0, done.stderr
    assert "dropped window_size (not searched by this space, or outside its range)" in done.stdout


@pytest.mark.parametrize("args, code, says", [
    (["--warm-start-from", "jna"], 1, "no study named 'jna'"),
    (["--top", "2"], 2, "--top goes with --warm-start-from STUDY"),
    (["--warm-start-from", "jan", "--top", "0"], 2, "--top must be at least 1"),
    (["--warm-start-from", "feb"], 1, "names the study being launched"),
])
def test_bad_warm_starts_are_one_line_and_create_nothing(january, args, code, says):
    results, config = january
    before = sorted(p.name for p in results.iterdir())
    done = _run(["launch", str(config), *args], results)
    assert done.returncode == code and says in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in results.iterdir()) == before


def test_another_algorithm_is_refused(january, tmp_path):
    results, _ = january
    dqn = make_tiny_sweep(**{"study": "feb", "algorithm": "dqn", "search.space_overrides": "{}",
                             "search.warm_start": "{study: jan}"})
    done = _run(["launch", str(write_config(tmp_path / "d.yaml", dqn)), "--dry-run"], results)
    assert done.returncode == 1 and "'jan' tuned ppo, this sweep tunes dqn" in done.stderr


@pytest.mark.slow
def test_the_best_sets_run_first_with_their_own_values(january):
    import optuna

    results, config = january
    done = _run(["launch", str(config), "--warm-start-from", "jan", "--top", "2"], results)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "warm start: queued the 2 best parameter set(s) of study 'jan'" in done.stderr
    url = f"sqlite:///{results / 'tradetune.db'}"
    jan = optuna.load_study(study_name="jan", storage=url)
    feb = optuna.load_study(study_name="feb", storage=url)
    best_two = sorted(jan.trials, key=lambda t: -t.value)[:2]
    assert [t.params for t in feb.trials] == [t.params for t in best_two]
    assert [t.value for t in feb.trials] != [t.value for t in best_two]  # scored afresh
    rows = json.loads(_run(["best", "--study", "feb", "-f", "json"], results).stdout)
    assert len(rows) == 2
