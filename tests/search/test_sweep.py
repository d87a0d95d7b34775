"""End-to-end sweeps through the CLI: real Ray Tune, RLlib, Optuna on SQLite and PostgreSQL."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from conftest import make_tiny_sweep
from search.cli import main
from sweep_helpers import (assert_consistent, json_out, poll, run_cli, start_cli, states,
                           trials, write_config)

pytestmark = pytest.mark.slow
PG = "postgresql://postgres@127.0.0.1:5432/test"


def _launch_here(config: dict, folder: Path) -> tuple[Path, str]:
    """Launch ``config`` in this process, on the session's Ray: its results folder and URL."""
    results = folder / "results"
    path = write_config(folder / "sweep.yaml", config)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRADETUNE_RESULTS", str(results))
        patch.delenv("TRADETUNE_STORAGE", raising=False)
        assert main(["launch", str(path)]) == 0
    return results, f"sqlite:///{results / 'tradetune.db'}"


@pytest.fixture(scope="module")
def launched(tmp_path_factory, ray_session):
    """One tiny sweep launched in-process on the session's Ray; its results are read by the
    query tests below."""
    root = tmp_path_factory.mktemp("launched")
    results, url = _launch_here(make_tiny_sweep(**{"study": "e2e", "search.num_samples": 2}), root)
    return {"results": results, "config": root / "sweep.yaml", "url": url, "study": "e2e"}


def test_launch_runs_the_budget(launched):
    import optuna

    assert_consistent(launched["url"], "e2e", 2)
    attrs = optuna.load_study(study_name="e2e", storage=launched["url"]).user_attrs
    assert attrs["tradetune_config"]["search"]["num_samples"] == 2
    assert attrs["tradetune_space"]["algorithm"] == "ppo"
    assert len(attrs["tradetune_space"]["fingerprint"]) == 16
    assert {"ray", "optuna", "torch", "tensortrade"} <= set(attrs["tradetune_versions"])
    assert "launch" in attrs["tradetune_command"]


@pytest.mark.parametrize("sampler", ["gp", "tpe_grouped"])
def test_a_sweep_runs_on_each_model_based_sampler(sampler, tmp_path, ray_session):
    """GP and grouped TPE drive a real sweep past their start-up trials (one random trial,
    then the model), and the study stores which sampler it ran with."""
    import optuna

    results, url = _launch_here(make_tiny_sweep(**{
        "study": sampler, "search.sampler": sampler, "search.num_samples": 3,
        "search.startup_trials": 1, "training.max_iterations": 1}), tmp_path)
    study = optuna.load_study(study_name=sampler, storage=url)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    assert study.user_attrs["tradetune_config"]["search"]["sampler"] == sampler


@pytest.mark.parametrize("max_iterations, eval_every, evals", [(6, 1, 6), (7, 2, 4)])
def test_the_default_selection_is_asha_and_its_stops_are_complete_trials(
        max_iterations, eval_every, evals, tmp_path, ray_session):
    """search.scheduler auto (the default) runs ASHA on a one-run-per-trial study: the study
    stores 'asha', and a trial ASHA cuts at its first rung is a COMPLETE trial with its
    evaluations so far and stop reason 'scheduler' (patience is off, so only ASHA stops). A
    trial ASHA keeps trains its whole budget, including the validation at its last iteration
    when max_iterations is not a multiple of eval_every (7 iterations: 2, 4, 6 and 7)."""
    import optuna

    config = make_tiny_sweep(**{"study": "asha", "search.scheduler": "auto",
                                "search.num_samples": 6, "training.max_iterations": max_iterations,
                                "training.eval_every": eval_every,
                                "training.min_evals": 1, "training.patience": "null"})
    _, url = _launch_here(config, tmp_path)
    assert_consistent(url, "asha", 6)
    study = optuna.load_study(study_name="asha", storage=url)
    assert study.user_attrs["tradetune_config"]["search"]["scheduler"] == "asha"
    reasons = {t.number: t.user_attrs["stop_reason"] for t in study.trials}
    assert "scheduler" in reasons.values(), reasons
    assert "max_iterations" in reasons.values(), reasons  # the first trial is never cut
    for trial in study.trials:
        # Every evaluation but the last is an intermediate value; the last is the trial's value.
        evaluations = len(trial.intermediate_values) + 1
        if reasons[trial.number] == "scheduler":
            assert evaluations < evals, (trial.number, evaluations)
        else:
            assert (reasons[trial.number], evaluations) == ("max_iterations", evals), trial.number


def test_best_json_is_ready_to_use_and_imports_no_ray(launched):
    code = ("import sys, json; from search.cli import main; rc = main(['best', '--study', 'e2e',"
            " '--top', '5', '--format', 'json']);"
            "assert not {'ray', 'torch', 'pandas'} & set(sys.modules), 'heavy import';"
            "sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "TRADETUNE_RESULTS": str(launched["results"])})
    rows = json_out(done)
    assert [r["number"] for r in rows] and len(rows) == 2
    assert rows[0]["value"] >= rows[1]["value"]
    for row in rows:
        assert set(row) >= {"number", "value", "params", "metrics", "checkpoint", "settings"}
        assert Path(row["checkpoint"]).is_dir()
        assert row["metrics"]["sharpe"] == row["value"]
        assert row["settings"]["model"]["fcnet_hiddens"] == [16]
    check = rows[0]["overfitting"]
    assert check["n_trials"] == 2 and 0.0 <= check["deflated_sharpe"] <= 1.0
    assert check["sharpe_per_bar"] == rows[0]["metrics"]["sharpe_per_bar"]


def test_status_json(launched):
    status = json_out(run_cli(["status", "--study", "e2e", "-f", "json"], launched["results"]))
    assert status["counts"] == {"COMPLETE": 2, "RUNNING": 0, "FAIL": 0, "PRUNED": 0,
                                "WAITING": 0}
    assert status["best_value"] == max(t.value for t in trials(launched["url"], "e2e"))
    assert status["config"]["search"]["num_samples"] == 2
    listing = json_out(run_cli(["status", "-f", "json"], launched["results"]))
    assert [s["study"] for s in listing] == ["e2e"]


def test_optuna_cli_reads_the_same_study(launched):
    optuna_cli = Path(sys.executable).with_name("optuna")
    done = subprocess.run([str(optuna_cli), "best-trial", "--study-name", "e2e", "--storage",
                           launched["url"], "-f", "json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    best = json.loads(done.stdout)
    assert best["value"] == max(t.value for t in trials(launched["url"], "e2e"))


def test_export_and_onnx_match_the_rllib_module(launched, tmp_path):
    out = tmp_path / "export"
    done = run_cli(["export", "--study", "e2e", "--out", str(out), "--onnx"],
                   launched["results"])
    assert done.returncode == 0, done.stderr
    for name in ("rllib_config.json", "sweep_config.json", "trial.json", "policy.onnx",
                 "policy_obs.onnx"):
        assert (out / name).is_file(), name
    rllib = json.loads((out / "rllib_config.json").read_text())
    assert rllib["algorithm"] == "PPO" and rllib["rl_module"]["model_config"]["fcnet_hiddens"]

    import onnxruntime

    from trainables.env import TradingEnv
    from trainables.evaluation import as_policy
    from trainables.rllib_trainable import load_module

    settings = json.loads((out / "trial.json").read_text())
    env = TradingEnv({**rllib["environment"]["env_config"], "split": "val"})
    obs = np.concatenate([env.observations(0), env.observations(1)])
    session = onnxruntime.InferenceSession(str(out / "policy_obs.onnx"))
    onnx_actions = session.run(["action"], {"obs": obs})[0]
    rllib_actions = as_policy(load_module(out / "checkpoint"))(obs)
    assert settings["number"] >= 0
    assert np.array_equal(onnx_actions, rllib_actions)


def test_evaluate_scores_the_test_split(launched):
    done = run_cli(["evaluate", "--study", "e2e", "-f", "json"], launched["results"])
    result = json_out(done)
    assert result["split"] == "test" and result["bars"] > 100
    assert {"pnl_pct", "sharpe", "max_drawdown", "buy_and_hold_pct", "trades"} <= set(result)


def test_misspelt_study_suggests_and_creates_nothing(launched):
    done = run_cli(["best", "--study", "e2f"], launched["results"])
    assert done.returncode == 1
    assert done.stderr.strip() == ("tradetune best: error: no study named 'e2f' in "
                                   f"{launched['url']}; did you mean 'e2e'?")
    listing = json_out(run_cli(["status", "-f", "json"], launched["results"]))
    assert [s["study"] for s in listing] == ["e2e"]


def test_read_on_missing_database_creates_nothing(tmp_path):
    done = run_cli(["status"], tmp_path / "empty")
    assert done.returncode == 1 and "no study database" in done.stderr
    assert not (tmp_path / "empty").exists()


def test_launch_on_existing_name_refuses(launched):
    before = states(launched["url"], "e2e")
    done = run_cli(["launch", str(launched["config"])], launched["results"])
    assert done.returncode == 1
    assert "study 'e2e' already exists" in done.stderr
    assert "tradetune resume --study e2e" in done.stderr
    assert "Traceback" not in done.stderr
    assert states(launched["url"], "e2e") == before


def test_resume_of_finished_study_is_a_noop(launched):
    done = run_cli(["resume", "--study", "e2e"], launched["results"])
    assert done.returncode == 0, done.stderr
    assert "already finished" in done.stdout
    assert states(launched["url"], "e2e") == {"COMPLETE": 2}


def test_resume_refuses_a_changed_space(launched, tmp_path):
    import optuna

    from search.study.schema import ATTR_CONFIG

    url = f"sqlite:///{tmp_path / 'copy.db'}"
    optuna.copy_study(from_study_name="e2e", from_storage=launched["url"], to_storage=url)
    study = optuna.load_study(study_name="e2e", storage=url)
    config = study.user_attrs[ATTR_CONFIG]
    config["search"]["space_overrides"]["window_size"] = {"low": 5, "high": 20}
    study.set_user_attr(ATTR_CONFIG, config)
    done = run_cli(["resume", "--study", "e2e", "--storage", url], launched["results"])
    assert done.returncode == 1
    assert "search space of study 'e2e' changed since launch (window_size: 5..8 -> 5..20)" \
        in done.stderr
    assert states(url, "e2e") == {"COMPLETE": 2}


def _checkpoint_written(results: Path) -> bool:
    return any(results.glob("*/run-*/*/checkpoint_0*"))


@pytest.mark.parametrize("moment", ["trial_started", "trial_finished", "checkpoint_write"])
def test_sigkill_then_resume_finishes_the_budget(moment, tmp_path):
    results = tmp_path / "results"
    url = f"sqlite:///{results / 'tradetune.db'}"
    config = make_tiny_sweep(**{"study": "crash", "search.num_samples": 3})
    path = write_config(tmp_path / "sweep.yaml", config)
    driver = start_cli(["launch", str(path)], results, log=tmp_path / "launch.log")
    conditions = {
        "trial_started": lambda: states(url, "crash").get("RUNNING"),
        "trial_finished": lambda: states(url, "crash").get("COMPLETE"),
        "checkpoint_write": lambda: _checkpoint_written(results),
    }
    try:
        poll(conditions[moment], 300, moment)
    finally:
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    done = run_cli(["resume", "--study", "crash"], results)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert_consistent(url, "crash", 3)
    orphans = [t for t in trials(url, "crash") if t.state.name == "FAIL"]
    for trial in orphans:
        assert trial.user_attrs["fail_reason"] == "driver stopped while the trial was running"
    again = run_cli(["resume", "--study", "crash"], results)
    assert again.returncode == 0 and "already finished" in again.stdout


def test_two_drivers_share_a_postgres_study(tmp_path):
    study = f"two-drivers-{uuid.uuid4().hex[:8]}"
    config = make_tiny_sweep(**{"study": study, "search.num_samples": 6})
    path = write_config(tmp_path / "sweep.yaml", config)
    try:
        first = start_cli(["launch", str(path), "--storage", PG], tmp_path / "a",
                          log=tmp_path / "a.log")
        poll(lambda: trials(PG, study), 120, "the first driver's first trial")
        second = run_cli(["resume", "--study", study, "--storage", PG], tmp_path / "b")
        assert first.wait(timeout=600) == 0, (tmp_path / "a.log").read_text()[-3000:]
        assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
        all_trials = trials(PG, study)
        assert len([t for t in all_trials if t.state.name == "COMPLETE"]) == 6
        assert len({t.user_attrs["driver"] for t in all_trials}) == 2  # both drivers ran trials
        assert not [t for t in all_trials if t.state.name == "RUNNING"]
        numbers = [t.number for t in all_trials]
        assert len(numbers) == len(set(numbers))
        assert len({t.user_attrs["tune_trial_id"] for t in all_trials}) == len(all_trials)
    finally:
        import optuna

        try:
            optuna.delete_study(study_name=study, storage=PG)
        except KeyError:
            pass


CLUSTER_SCRIPT = """
import sys
from ray.cluster_utils import Cluster
from search.cli import main
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
for _ in range(2):
    cluster.add_node(num_cpus=1)
cluster.wait_for_nodes()
try:
    rc = main(["launch", sys.argv[1], "--address", cluster.address])
finally:
    import ray
    ray.shutdown()
    cluster.shutdown()
sys.exit(rc)
"""


def test_sweep_on_a_multi_node_cluster(tmp_path):
    results = tmp_path / "results"
    url = f"sqlite:///{results / 'tradetune.db'}"
    config = make_tiny_sweep(**{"study": "cluster", "search.num_samples": 3,
                                "search.max_concurrent": 3})
    path = write_config(tmp_path / "sweep.yaml", config)
    from sweep_helpers import REPO, cli_env

    done = subprocess.run([sys.executable, "-c", CLUSTER_SCRIPT, str(path)], cwd=REPO,
                          env=cli_env(results), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert_consistent(url, "cluster", 3)
    nodes = {t.user_attrs["node_id"] for t in trials(url, "cluster")}
    assert len(nodes) >= 2, nodes


def _processes_of(session: str) -> list[str]:
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if session in cmdline:
            found.append(cmdline[:120])
    return found


def test_ctrl_c_stops_cleanly_and_prints_resume(tmp_path):
    import re

    results = tmp_path / "results"
    url = f"sqlite:///{results / 'tradetune.db'}"
    config = make_tiny_sweep(**{"study": "interrupted", "search.num_samples": 3})
    path = write_config(tmp_path / "sweep.yaml", config)
    log = tmp_path / "launch.log"
    driver = start_cli(["launch", str(path)], results, log=log)
    poll(lambda: states(url, "interrupted").get("RUNNING"), 300, "a running trial")
    driver.send_signal(signal.SIGINT)
    assert driver.wait(timeout=120) == 130
    output = log.read_text()
    assert "Continue with: tradetune resume --study interrupted" in output
    assert not states(url, "interrupted").get("RUNNING")
    interrupted = [t for t in trials(url, "interrupted") if t.state.name == "FAIL"]
    assert all(t.user_attrs["fail_reason"] == "sweep interrupted" for t in interrupted)
    session = re.search(r"(session_\d{4}-\d\d-\d\d_[\d_-]+)", output)
    assert session, "the run names its Ray session"
    poll(lambda: not _processes_of(session.group(1)), 30, "the driver's Ray to shut down")
    done = run_cli(["resume", "--study", "interrupted"], results)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert_consistent(url, "interrupted", 3)


def test_evaluate_top_compares_validation_and_test(launched):
    result = json_out(run_cli(["evaluate", "--study", "e2e", "--top", "2", "-f", "json"],
                              launched["results"]))
    rows = result["trials"]
    assert [r["trial"] for r in rows] == [t["number"] for t in json_out(run_cli(
        ["best", "--study", "e2e", "--top", "2", "-f", "json"], launched["results"]))]
    single = json_out(run_cli(["evaluate", "--study", "e2e", "--trial", str(rows[0]["trial"]),
                               "-f", "json"], launched["results"]))
    assert rows[0]["test_sharpe"] == single["sharpe"]
    assert rows[0]["val_sharpe"] == rows[0]["value"]
    assert "verdict" in result["overfitting"]


def test_walk_forward_and_seeds_through_the_service(tmp_path, ray_session):
    """A study of 2 folds x 2 seeds: the value is the aggregate, `best` shows the runs, and
    `evaluate --split val` rescoring the kept checkpoint gives that checkpoint's own score."""
    config = make_tiny_sweep(**{"study": "folds", "search.num_samples": 1,
                                "data.walk_forward": "{folds: 2, mode: rolling}",
                                "training.seeds": 2, "training.max_iterations": 2,
                                "training.aggregate": "mean_minus_std"})
    results, url = _launch_here(config, tmp_path)
    assert_consistent(url, "folds", 1)

    (row,) = json_out(run_cli(["best", "--study", "folds", "-f", "json"], results))
    m = row["metrics"]
    assert len(m["run_scores"]) == 2 and all(len(seeds) == 2 for seeds in m["run_scores"])
    folds = [float(np.mean(seeds)) for seeds in m["run_scores"]]
    assert m["fold_scores"] == pytest.approx(folds)
    assert row["value"] == pytest.approx(np.mean(folds) - np.std(folds))
    assert m["checkpoint_score"] == m["run_scores"][-1][0], "seed 0 of the last fold is kept"

    text = run_cli(["best", "--study", "folds"], results)
    assert text.returncode == 0 and "runs: per fold [" in text.stdout, text.stdout
    val = json_out(run_cli(["evaluate", "--study", "folds", "--split", "val", "-f", "json"],
                           results))
    assert val["sharpe"] == pytest.approx(m["checkpoint_score"], rel=1e-6)


def test_multi_objective_study_through_the_service(tmp_path):
    """Sharpe up, drawdown down: an Optuna multi-objective study; `best` lists the Pareto front,
    `evaluate`/`export` default to its highest-Sharpe trial, and the report draws the front."""
    import optuna

    results = tmp_path / "results"
    url = f"sqlite:///{results / 'tradetune.db'}"
    config = make_tiny_sweep(**{"study": "pareto", "search.num_samples": 3,
                                "training.max_iterations": 2,
                                "training.objectives": "[sharpe, max_drawdown]"})
    path = write_config(tmp_path / "sweep.yaml", config)
    # Killed after its first trial, then resumed: resume works on a multi-objective study too.
    driver = start_cli(["launch", str(path)], results, log=tmp_path / "launch.log")
    try:
        poll(lambda: states(url, "pareto").get("COMPLETE"), 300, "a COMPLETE trial")
    finally:
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    done = run_cli(["resume", "--study", "pareto"], results)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    study = optuna.load_study(study_name="pareto", storage=url)
    assert not [t for t in study.trials if t.state.name in ("RUNNING", "WAITING")]
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 3
    for trial in complete:  # both values are the kept checkpoint's validation figures
        assert trial.values == [trial.user_attrs["metrics"]["sharpe"],
                                trial.user_attrs["metrics"]["max_drawdown"]]

    rows = json_out(run_cli(["best", "--study", "pareto", "-f", "json"], results))
    front = sorted(study.best_trials, key=lambda t: (-t.values[0], t.number))
    assert [r["number"] for r in rows] == [t.number for t in front]
    assert all(r["pareto"] and list(r["objectives"]) == ["sharpe", "max_drawdown"]
               for r in rows)
    text = run_cli(["best", "--study", "pareto"], results)
    assert text.returncode == 0 and text.stdout.startswith("Pareto front"), text.stderr
    status = json_out(run_cli(["status", "--study", "pareto", "-f", "json"], results))
    assert status["best_value"] == max(t.values[0] for t in complete)

    chosen = max(complete, key=lambda t: (t.values[0], -t.number))
    test = json_out(run_cli(["evaluate", "--study", "pareto", "-f", "json"], results))
    assert test["trial"] == chosen.number and test["split"] == "test"
    val = json_out(run_cli(["evaluate", "--study", "pareto", "--split", "val", "-f", "json"],
                           results))
    assert val["max_drawdown"] == pytest.approx(chosen.values[1], rel=1e-6)
    exported = run_cli(["export", "--study", "pareto", "--out", str(tmp_path / "x")], results)
    assert exported.returncode == 0, exported.stderr
    assert json.loads((tmp_path / "x" / "trial.json").read_text())["number"] == chosen.number

    assert main(["report", "--study", "pareto", "--storage", url, "--out",
                 str(tmp_path / "report")]) == 0
    page = (tmp_path / "report" / "index.html").read_text()
    assert '<img src="pareto.png"' in page and '<img src="history.png"' in page
