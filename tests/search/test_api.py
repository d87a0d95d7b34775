"""The Python API (search/api.py): plain data back, typed errors, silence, no exits."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from conftest import make_tiny_sweep
from search import api
from search.events import EVENT_KINDS
from sweep_helpers import REPO, cli_env, two_studies, write_config  # noqa: F401


# -- config: dict overrides follow the file's and --set's rule -----------------------------------

def test_dict_overrides_merge_as_set_does(tmp_path):
    path = write_config(tmp_path / "sweep.yaml", {
        "study": "merge", "search": {"seed": 7, "num_samples": 9,
                                     "space_overrides": {"lr": {"low": 1e-5, "high": 1e-4},
                                                         "gamma": 0.9}}})
    overrides = {"search": {"num_samples": 4}, "training.max_iterations": 3,
                 "search.space_overrides": {"gamma": 0.95}}
    config = api.sweep_config(path, overrides)

    # a mapping merges into a fixed section: the file's other search keys stay
    assert config["search"]["num_samples"] == 4 and config["search"]["seed"] == 7
    assert config["training"]["max_iterations"] == 3
    # ... and replaces a free-form value whole: the file's lr override is gone
    assert config["search"]["space_overrides"] == {"gamma": 0.95}
    assert config == api.sweep_config(path, sets=[
        "search={num_samples: 4}", "training.max_iterations=3",
        "search.space_overrides={gamma: 0.95}"])
    # a mapping works as the file; num_samples= wins over both
    assert api.sweep_config(yaml.safe_load(path.read_text()), overrides,
                            num_samples=5)["search"]["num_samples"] == 5


def test_bad_input_raises_a_typed_error_prints_nothing_and_creates_nothing(results_dir, capfd):
    config = make_tiny_sweep(**{"study": "bad"})
    with pytest.raises(api.ConfigError, match="did you mean 'training.max_iterations'"):
        api.launch(config, {"training.max_iteratons": 3})
    with pytest.raises(api.ConfigError, match="search.num_samples must be >= 1"):
        api.launch(config, num_samples=0)
    with pytest.raises(api.ConfigError, match="override key ''"):
        api.sweep_config(config, {"": 1})
    with pytest.raises(api.StorageError, match="no study database at"):
        api.resume("bad")
    assert capfd.readouterr() == ("", "")
    assert not results_dir.exists() or not any(results_dir.rglob("*.db"))


# -- reading a study: plain data, no ray, no torch -----------------------------------------------

_READ = """
import json, sys
from search import api
from search.events import EVENT_KINDS
study = api.open_study("alpha")
rows, status = study.best(2), study.status()
listing, every = api.studies(), api.status_all()
heavy = {"ray", "torch", "pandas"} & set(sys.modules)
print(json.dumps({"rows": rows, "status": status, "studies": listing, "every": every,
                  "heavy": sorted(heavy), "repr": repr(study)}))
"""


def test_a_study_reads_as_plain_data_without_ray_or_torch(two_studies):
    done = subprocess.run([sys.executable, "-c", _READ], cwd=REPO, capture_output=True,
                          text=True, env=cli_env(two_studies["results"]), timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr == ""  # nothing printed but the test's own line
    read = json.loads(done.stdout)
    assert read["heavy"] == []
    assert [r["number"] for r in read["rows"]] == [1, 0]
    assert [r["value"] for r in read["rows"]] == [1.5, 0.5]
    assert read["status"]["counts"]["COMPLETE"] == 2 and read["status"]["counts"]["FAIL"] == 1
    assert read["status"]["best_trial"] == 1 and read["status"]["config"]["study"] == "alpha"
    assert [s["study"] for s in read["studies"]] == [s["study"] for s in read["every"]] == [
        "alpha", "beta"]
    assert read["repr"] == "Study(name='alpha')"


def test_study_errors_are_typed_and_silent(two_studies, capfd):
    with pytest.raises(api.StudyError, match="no study named 'alpah' in .*; did you mean 'alpha'"):
        api.open_study("alpah")
    with pytest.raises(api.ConfigError, match="invalid study name"):
        api.open_study("../x")
    unchecked = api.open_study("alpah", check=False)  # looked up by its first call
    with pytest.raises(api.StudyError, match="no study named 'alpah'"):
        unchecked.status()
    study = api.open_study("alpha")
    with pytest.raises(api.ArgumentError, match="k must be a whole number of trials >= 1"):
        study.best(0)
    with pytest.raises(api.ArgumentError, match="split must be 'test' or 'val'"):
        study.evaluate(split="train")
    with pytest.raises(api.UserError, match="not deleted"):
        study.delete(confirm=lambda question: False)
    assert api.open_study("alpha").status()["counts"]["COMPLETE"] == 2  # still there
    assert capfd.readouterr() == ("", "")


# -- arguments of the wrong type: one-line ArgumentErrors at the door (issue 22 row 11) ----------

@pytest.mark.parametrize("call, says", [
    (lambda: api.sweep_config(None, ["training.max_iterations=3"], study="s"),
     r"^overrides must be a mapping such as \{'training.max_iterations': 3\} or None, got a "
     r"list: \['training.max_iterations=3'\]$"),
    (lambda: api.sweep_config(None, "training.max_iterations=3", study="s"),
     r"^overrides must be a mapping .* got a str: 'training.max_iterations=3'$"),
    (lambda: api.sweep_config(["study: s"]), r"^config_or_path must be a YAML file's path .* got "
                                             r"a list: \['study: s'\]$"),
    (lambda: api.launch(b"study: s"), r"^config_or_path must be .* got a bytes: b'study: s'$"),
    (lambda: api.dry_run(None, sets="k=v", study="s"),
     r"^sets must be a list of 'KEY=VALUE' strings, e.g. \['training.max_iterations=3'\], got "
     r"'k=v'$"),
    (lambda: api.sweep_config(None, study="s", num_samples=True),
     r"^num_samples must be a number of trials \(an int\) or None, got True \(bool\)$"),
    (lambda: api.launch(None, study="s", storage=3), r"^storage must be a storage URL"),
    (lambda: api.open_study("s", check="no"), r"^check must be True or False, got 'no'$"),
    (lambda: api.describe_data(b"bars.csv"), r"^path must be a path"),
])
def test_wrong_argument_types_are_one_line_argument_errors(results_dir, capfd, call, says):
    with pytest.raises(api.ArgumentError, match=says) as error:
        call()
    assert "\n" not in str(error.value)
    assert capfd.readouterr() == ("", "")
    assert not results_dir.exists()


@pytest.mark.parametrize("method, kwargs, says", [
    ("evaluate", {"trial": "1"}, r"^trial must be a trial number \(an int\) or None, got '1'"),
    ("evaluate", {"trial": True}, r"^trial must be .* got True \(bool\)$"),  # not trial 1
    ("evaluate", {"split": ["val"]}, r"^split must be 'test' or 'val', got \['val'\]$"),
    ("compare", {"k": 2.0}, r"^k must be a whole number of trials >= 1, got 2.0$"),
    ("export", {"out": "x", "trial": 1.0}, r"^trial must be .* got 1.0 \(float\)$"),
    ("export", {"out": "x", "onnx": "no"}, r"^onnx must be True or False, got 'no'$"),
    ("export", {"out": ""}, r"^out must be a path \(a non-empty str or pathlib.Path\)"),
    ("report", {"out": "x", "force": 1}, r"^force must be True or False, got 1$"),
    ("promote", {"seeds": "3"}, r"^seeds must be a number of seeds \(an int\), got '3'"),
    ("delete", {"confirm": "yes"}, r"^confirm must be a function or None, got 'yes'$"),
])
def test_study_methods_check_their_arguments_before_anything(two_studies, tmp_path, capfd,
                                                             method, kwargs, says):
    before = sorted(p.name for p in two_studies["results"].rglob("*"))
    study = api.open_study("alpha")
    with pytest.raises(api.ArgumentError, match=says) as error:
        getattr(study, method)(**kwargs)
    assert capfd.readouterr() == ("", "")
    assert sorted(p.name for p in two_studies["results"].rglob("*")) == before
    assert not (tmp_path / "x").exists()


def test_numpy_scalars_are_taken_as_plain_values(two_studies):
    import numpy as np

    config = api.sweep_config(None, {"training.max_iterations": np.int64(3),
                                     "search.space_overrides": {"gamma": np.float32(0.5),
                                                                "hidden_width": np.int64(64)},
                                     "search.enqueue_tutorial": np.bool_(False)},
                              study="np", num_samples=np.int64(4))
    assert config["training"]["max_iterations"] == 3
    assert type(config["training"]["max_iterations"]) is int
    assert config["search"]["space_overrides"] == {"gamma": 0.5, "hidden_width": 64}
    assert config["search"]["enqueue_tutorial"] is False and config["search"]["num_samples"] == 4
    study = api.open_study("alpha")
    assert [row["number"] for row in study.best(np.int64(1))] == [1]


def test_a_storage_password_is_never_shown():
    study = api.Study("s", "postgresql://me:hunter2@db.example:5432/tt")
    assert "hunter2" not in study.storage and "hunter2" not in repr(study)


# -- a real sweep through the API ----------------------------------------------------------------

@pytest.mark.slow
def test_launch_reads_and_evaluates_through_the_api(results_dir, ray_session, capfd, tmp_path):
    events = []
    config = make_tiny_sweep(**{"study": "api"})
    result = api.launch(config, {"search": {"num_samples": 2}, "training.max_iterations": 3},
                        progress=events.append)

    assert isinstance(result, api.SweepResult) and result.reason == api.COMPLETED
    assert result.study == "api" and result.signal is None and not result.stopped
    assert result.storage == f"sqlite:///{results_dir / 'tradetune.db'}"
    assert result.counts["COMPLETE"] == 2 and result.counts["RUNNING"] == 0
    kinds = [event.kind for event in events]
    assert kinds[-1] == "finished" and {"ray_logs", "launched", "progress"} <= set(kinds)
    assert set(kinds) <= set(EVENT_KINDS)
    assert events[-1].message.startswith("sweep finished: 2 complete")
    out, err = capfd.readouterr()
    assert "launched study" not in out + err and "sweep finished" not in out + err

    study = api.open_study("api")
    rows = study.best(5)
    assert len(rows) == 2 and rows[0]["number"] == result.best_trial
    assert rows[0]["value"] == result.best_value
    assert rows[0]["settings"]["model"]["fcnet_hiddens"] == [16]
    assert study.status()["counts"] == result.counts
    scored = study.evaluate(split="test", actions=tmp_path / "actions.csv")
    assert scored["trial"] == result.best_trial and scored["split"] == "test"
    assert {"sharpe", "pnl_pct", "buy_and_hold_pct", "beats_buy_and_hold"} <= set(scored)
    assert (tmp_path / "actions.csv").read_text().startswith("timestamp,close,action")
    json.dumps([rows, scored, study.status()])  # plain data

    again = api.resume("api", progress=events.append)
    assert again.reason == api.NOTHING_TO_RUN and again.counts == result.counts
    assert events[-1].kind == "nothing_to_run"
    out, err = capfd.readouterr()  # libraries may warn; the API itself says nothing
    assert "already finished" not in out + err
