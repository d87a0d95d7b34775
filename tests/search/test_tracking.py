"""Experiment tracking (config ``tracking``): MLflow runs read back with MLflow's own client
from a real local store (a SQLite backend in tmp_path), TensorBoard event files, a tracking
server that is down, and the query path that must not load either library."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from search.config.sweep_config import load_config
from search.errors import ConfigError
from sweep_helpers import (REPO, TRADETUNE, add_study, assert_consistent, cli_env, poll,
                           run_cli, start_cli, states, trials, write_config)


@pytest.mark.parametrize("item, match", [
    ("tracking.mlflow=yes please", r"tracking.mlflow must be true or false"),
    ("tracking.tensorboard=1", r"tracking.tensorboard must be true or false"),
    ("tracking.mlflow_uri=http://h:5000",
     r"tracking.mlflow_uri is set but tracking.mlflow is false"),
    ("tracking.mlflow_experiment=''", r"tracking.mlflow_experiment must be text or null"),
    ("tracking.mlfow=true", r"unknown config key 'tracking.mlfow'; did you mean "
                            r"'tracking.mlflow'"),
])
def test_bad_tracking_keys_are_one_line_config_errors(item, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, ["study=s", item])


def test_tracking_is_off_by_default_and_text_keys_stay_text():
    config = load_config(None, ["study=s"])
    assert config["tracking"] == {"mlflow": False, "mlflow_uri": None,
                                  "mlflow_experiment": None, "tensorboard": False}
    config = load_config(None, ["study=s", "tracking.mlflow=true",
                                "tracking.mlflow_experiment=2024"])
    assert config["tracking"]["mlflow_experiment"] == "2024"


def test_tracking_off_imports_neither_library_on_a_config_load_and_a_query(tmp_path):
    """Costing nothing when off: a config load and ``best`` leave mlflow and tensorboardX
    unimported (a tracked study's ``best`` too: only a sweep or an export loads MLflow)."""
    url = f"sqlite:///{tmp_path / 'q.db'}"
    add_study(url, tmp_path / "results", "q", [0.5, 1.0])
    code = (
        "import sys, tradetune\n"
        "from search.config.sweep_config import load_config\n"
        "load_config('examples/quickstart.yaml')\n"
        "load_config('examples/quickstart_mlflow.yaml')\n"
        f"rows = tradetune.open_study('q', storage={url!r}).best(2)\n"
        "assert rows[0]['value'] == 1.0, rows\n"
        "loaded = [m for m in ('mlflow', 'tensorboardX', 'torch', 'ray') if m in sys.modules]\n"
        "assert not loaded, loaded\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, env=cli_env(tmp_path / "results"), timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dry_run_shows_the_tracking_uri_from_the_environment(tmp_path):
    config = write_config(tmp_path / "c.yaml", load_config(None, [
        "study=dry", "data.synthetic={n_bars: 1500, seed: 7, freq: 1h}",
        "tracking.mlflow=true", "tracking.tensorboard=true"]))
    env = {**cli_env(tmp_path / "results"), "MLFLOW_TRACKING_URI": "http://user:secret@mlf:5000"}
    done = subprocess.run([*TRADETUNE, "launch", str(config), "--dry-run"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    effective = yaml.safe_load(done.stdout)
    assert effective["tracking"] == {"mlflow": True, "mlflow_uri": "http://user:***@mlf:5000",
                                     "mlflow_experiment": None, "tensorboard": True}
    assert "secret" not in done.stdout + done.stderr
    assert not (tmp_path / "results").exists()


def _launch(config_path, results, extra_env=None, timeout=900):
    env = {**cli_env(results), **(extra_env or {})}
    return subprocess.run([*TRADETUNE, "launch", str(config_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_a_tracked_sweep_is_a_parent_run_with_a_nested_run_per_trial(tmp_path, tiny_sweep):
    """2 trials of 2 iterations, MLflow found through MLFLOW_TRACKING_URI (a real SQLite
    store), TensorBoard on; then everything is read back with MLflow's client, and `export`
    adds its files to the trial's run."""
    import optuna
    from mlflow.tracking import MlflowClient
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    results, uri = tmp_path / "results", f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = write_config(tmp_path / "c.yaml", tiny_sweep(**{
        "study": "tracked", "training.max_iterations": 2, "training.patience": "null",
        "tracking.mlflow": "true", "tracking.tensorboard": "true"}))
    done = _launch(config, results, {"MLFLOW_TRACKING_URI": uri})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "note" not in done.stderr.lower() or "mlflow" not in done.stderr.lower(), done.stderr

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("tracked")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if MLFLOW_PARENT_RUN_ID not in r.data.tags]
    children = [r for r in runs if MLFLOW_PARENT_RUN_ID in r.data.tags]
    assert len(parents) == 1 and len(children) == 2, [r.info.run_name for r in runs]
    parent = parents[0]
    assert parent.info.run_name == "tracked" and parent.info.status == "FINISHED"
    assert parent.data.params["training.max_iterations"] == "2"
    assert parent.data.params["tracking.mlflow"] == "true"

    study = optuna.load_study(study_name="tracked",
                              storage=f"sqlite:///{results / 'tradetune.db'}")
    by_number = {t.number: t for t in study.trials}
    for child in children:
        assert child.data.tags[MLFLOW_PARENT_RUN_ID] == parent.info.run_id
        assert child.info.status == "FINISHED"
        trial = by_number[int(child.data.tags["tradetune.trial"])]
        assert child.info.run_name == f"trial-{trial.number}"
        assert trial.user_attrs["mlflow_run"]["run_id"] == child.info.run_id
        assert child.data.params == {k: v if isinstance(v, str) else json.dumps(v)
                                     for k, v in trial.params.items()}
        assert child.data.tags["stop_reason"] == trial.user_attrs["stop_reason"] \
            == "max_iterations"
        history = client.get_metric_history(child.info.run_id, "val_score")
        assert [m.step for m in history] == [1, 2]  # the training iteration of each evaluation
        assert [m.value for m in history] == [trial.intermediate_values[s] for s in (1, 2)]
        assert {"val_sharpe", "val_pnl_pct", "best_val_score"} <= set(child.data.metrics)
        artifacts = [a.path for a in client.list_artifacts(child.info.run_id, "checkpoint")]
        kept = os.listdir(trial.user_attrs["checkpoint"] if os.path.isabs(
            trial.user_attrs["checkpoint"]) else results / trial.user_attrs["checkpoint"])
        assert sorted(a.split("/")[-1] for a in artifacts) == sorted(kept)
        events = list((results / "tracked" / "tensorboard" / f"trial-{trial.number:04d}")
                      .glob("events.out.tfevents.*"))
        assert events, f"no TensorBoard events for trial {trial.number}"

    # Artifacts live beside the SQLite store, not in the directory the sweep ran from.
    assert (tmp_path / "mlruns").is_dir() and not (REPO / "mlruns").exists()
    exported = subprocess.run([*TRADETUNE, "export", "--study", "tracked", "--out",
                               str(tmp_path / "bundle")], cwd=REPO, env=cli_env(results),
                              capture_output=True, text=True, timeout=300)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    best = max((t for t in study.trials if t.value is not None), key=lambda t: t.value)
    run_id = best.user_attrs["mlflow_run"]["run_id"]
    assert f"logged to MLflow run {run_id}" in exported.stdout
    logged = {a.path for a in client.list_artifacts(run_id, "export")}
    assert {"export/rllib_config.json", "export/trial.json", "export/sweep_config.json"} <= logged
    assert json.loads(open(client.download_artifacts(
        run_id, "export/trial.json", str(tmp_path))).read())["number"] == best.number


@pytest.mark.slow
def test_a_resumed_sweep_goes_on_in_the_studys_parent_run(tmp_path, tiny_sweep):
    """Ctrl-C after the first finished trial, then `resume`: still one parent run for the
    study (KILLED at the stop, FINISHED at the end), every trial's run nested under it."""
    import signal

    from mlflow.tracking import MlflowClient
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    results, uri = tmp_path / "results", f"sqlite:///{tmp_path / 'mlflow.db'}"
    url = f"sqlite:///{results / 'tradetune.db'}"
    config = write_config(tmp_path / "c.yaml", tiny_sweep(**{
        "study": "resumed", "search.num_samples": 3, "search.max_concurrent": 1,
        "training.max_iterations": 2, "training.patience": "null",
        "tracking.mlflow": "true", "tracking.mlflow_uri": uri}))
    driver = start_cli(["launch", str(config)], results, log=tmp_path / "launch.log")
    poll(lambda: states(url, "resumed").get("COMPLETE"), 300, "a finished trial")
    driver.send_signal(signal.SIGINT)
    assert driver.wait(timeout=120) == 130, (tmp_path / "launch.log").read_text()[-2000:]

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("resumed").experiment_id

    def runs() -> tuple[list, list]:
        every = client.search_runs([experiment])
        return ([r for r in every if MLFLOW_PARENT_RUN_ID not in r.data.tags],
                [r for r in every if MLFLOW_PARENT_RUN_ID in r.data.tags])

    parents, _ = runs()
    assert len(parents) == 1 and parents[0].info.status == "KILLED"
    done = run_cli(["resume", "--study", "resumed"], results)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert_consistent(url, "resumed", 3)

    after, children = runs()
    assert [p.info.run_id for p in after] == [parents[0].info.run_id]
    assert after[0].info.status == "FINISHED"
    assert all(c.data.tags[MLFLOW_PARENT_RUN_ID] == parents[0].info.run_id for c in children)
    complete = {str(t.number) for t in trials(url, "resumed") if t.state.name == "COMPLETE"}
    assert len(complete) == 3
    assert complete <= {c.data.tags["tradetune.trial"] for c in children}


@pytest.mark.slow
def test_a_tracking_server_that_is_down_costs_one_note_and_the_sweep_completes(tmp_path,
                                                                               tiny_sweep):
    results = tmp_path / "results"
    config = write_config(tmp_path / "c.yaml", tiny_sweep(**{
        "study": "down", "search.num_samples": 2, "training.max_iterations": 1,
        "tracking.mlflow": "true", "tracking.mlflow_uri": "http://127.0.0.1:9"}))
    done = _launch(config, results)
    assert done.returncode == 0, done.stdout + done.stderr
    notes = [line for line in (done.stdout + done.stderr).splitlines() if "MLflow" in line]
    assert len(notes) == 1, notes
    assert "http://127.0.0.1:9" in notes[0] and "goes on without MLflow" in notes[0]
    assert "sweep finished: 2 complete" in done.stdout + done.stderr


def test_an_export_to_a_store_that_is_down_is_a_note_not_a_failure(tmp_path):
    """The export stands; its result says what did not reach MLflow, fast (one try)."""
    import time

    from search.results.mlflow_runs import log_export

    (tmp_path / "trial.json").write_text("{}")
    started = time.monotonic()
    said = log_export({"uri": "http://127.0.0.1:9", "run_id": "abc"}, None, tmp_path,
                      ["trial.json"])
    assert time.monotonic() - started < 30
    assert said["logged"] is False and said["run_id"] == "abc"
    assert "not logged to MLflow run abc" in said["note"] and "127.0.0.1:9" in said["note"]
    # A store stored with its password masked is used only when the environment names it.
    masked = {"uri": "http://user:***@127.0.0.1:9", "run_id": "abc"}
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        said = log_export(masked, None, tmp_path, ["trial.json"])
        assert "set MLFLOW_TRACKING_URI to that store" in said["note"]
        patch.setenv("MLFLOW_TRACKING_URI", "http://user:pw@127.0.0.1:9")
        said = log_export(masked, None, tmp_path, ["trial.json"])
        assert "failed" in said["note"] or "Max retries" in said["note"], said
        assert "pw" not in said["note"]
    assert not (REPO / "mlflow.db").exists()
