"""A custom ``search.space`` through the real ``tradetune`` command: a broken one is one line
before anything is created, and one that raises while a sweep samples fails its trial (never
leaves it RUNNING) and stops the sweep with one line."""
from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from sweep_helpers import REPO, TRADETUNE, cli_env, states, trials

GOOD = """
def sample(trial):
    return {"training": {"lr": trial.suggest_float("lr", 1e-4, 1e-3, log=True),
                         "num_epochs": 1, "train_batch_size_per_learner": 200,
                         "minibatch_size": 100},
            "model": {"fcnet_hiddens": [8], "fcnet_activation": "relu"},
            "env": {"window_size": helper()}}


def helper():
    return 5
"""


def _tradetune(args: list[str], results: Path, spaces_dir: Path,
               timeout: float = 600) -> subprocess.CompletedProcess:
    """The CLI with ``spaces_dir`` on PYTHONPATH, as README tells users to run it."""
    env = {**cli_env(results), "PYTHONPATH": f"{REPO}:{spaces_dir}"}
    return subprocess.run([*TRADETUNE, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _config(tmp_path: Path, module: str, code: str, **changes) -> Path:
    spaces_dir = tmp_path / "spaces"
    spaces_dir.mkdir(exist_ok=True)
    (spaces_dir / f"{module}.py").write_text(textwrap.dedent(code))
    sets = {"study": "custom", "search.space": f"{module}:sample", "search.num_samples": 2,
            "search.enqueue_tutorial": "false", "data.synthetic": "{n_bars: 1500, seed: 7}",
            "training.max_iterations": 2, "training.eval_every": 1,
            "training.envs_per_runner": 1, **changes}
    # Written as YAML and read by the CLI, which imports the space with PYTHONPATH set.
    config = yaml.safe_load(yaml.safe_dump({}))
    for key, value in sets.items():
        node = config
        *parents, last = key.split(".")
        for parent in parents:
            node = node.setdefault(parent, {})
        node[last] = yaml.safe_load(str(value))
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _one_error_line(done: subprocess.CompletedProcess, command: str) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith(f"tradetune {command}: error: "), lines
    return lines[0]


def test_launch_with_an_invalid_custom_space_is_one_line_and_creates_nothing(tmp_path):
    flat = "def sample(trial):\n    return {'lr': trial.suggest_float('lr', 1e-4, 1e-3)}\n"
    path = _config(tmp_path, "tt_flat_space", flat)
    results = tmp_path / "results"
    done = _tradetune(["launch", str(path)], results, tmp_path / "spaces")
    line = _one_error_line(done, "launch")
    assert "search.space 'tt_flat_space:sample' is not a valid space: unknown key(s) ['lr']" in line
    assert not results.exists()  # no study database, no experiment directory


def test_resume_dry_runs_the_custom_space_before_changing_anything(tmp_path):
    from search.study.storage import open_storage
    from search.study.studies import create_study, data_fingerprint
    from spaces import get_space

    path = _config(tmp_path, "tt_resumed_space", GOOD)
    results = tmp_path / "results"
    url = f"sqlite:///{results / 'tradetune.db'}"
    results.mkdir()
    import sys

    sys.path.insert(0, str(tmp_path / "spaces"))
    try:
        from search.config.sweep_config import load_config

        config = load_config(path)
        space = get_space("ppo", None, config["search"]["space"])
        study = create_study(open_storage(url), config, space, data_fingerprint(config["data"]))
    finally:
        sys.path.remove(str(tmp_path / "spaces"))
    study.ask()  # a trial left RUNNING by a driver that died
    # The helper changes (the space function's own source, and so its fingerprint, does not).
    module = tmp_path / "spaces" / "tt_resumed_space.py"
    module.write_text(module.read_text().replace("return 5", "return 0"))
    done = _tradetune(["resume", "--study", "custom"], results, tmp_path / "spaces")
    line = _one_error_line(done, "resume")
    assert "env.window_size must be a whole number >= 1, got 0" in line
    assert states(url, "custom") == {"RUNNING": 1}  # the orphan is left for a good resume


@pytest.mark.slow
def test_a_space_that_raises_while_sampling_fails_its_trial_and_stops(tmp_path):
    # Trial 0 (numbered 0 like the dry run's trial) trains in a Ray worker that finds the
    # space through PYTHONPATH alone, as README says; sampling trial 1 raises.
    flaky = GOOD.replace("def sample(trial):\n", "def sample(trial):\n    if trial.number == 1:\n"
                         "        raise ValueError('window too short for this lr')\n")
    path = _config(tmp_path, "tt_flaky_space", flaky, **{
        "search.num_samples": 3, "training.max_iterations": 1, "training.min_evals": 1})
    results = tmp_path / "results"
    url = f"sqlite:///{results / 'tradetune.db'}"
    done = _tradetune(["launch", str(path)], results, tmp_path / "spaces")
    line = _one_error_line(done, "launch")
    assert ("search.space 'tt_flaky_space:sample' raised ValueError: window too short for this "
            "lr while sampling trial 1 (marked FAIL); the sweep stopped") in line
    by_number = {t.number: t for t in trials(url, "custom")}
    assert states(url, "custom") == {"COMPLETE": 1, "FAIL": 1}
    assert by_number[0].state.name == "COMPLETE"
    assert by_number[1].user_attrs["fail_reason"] == ("search.space 'tt_flaky_space:sample' "
                                                      "raised ValueError: window too short "
                                                      "for this lr")
