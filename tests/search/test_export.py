"""What the query commands write and read around a study: export and report folders never
destroy a user's file or mix two outputs, checkpoints and market data are the ones the study was
launched with, and a results folder can move. Most tests use a study whose checkpoints are
plain folders (nothing restores them); the slow ones run a real tiny sweep."""
from __future__ import annotations

import hashlib
import html
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from conftest import make_tiny_sweep
from search.cli import main
from search.results.onnx_bundle import BUNDLE_FILES
from search.study.storage import open_storage
from search.study.studies import create_study, data_fingerprint
from spaces import get_space
from sweep_helpers import TRADETUNE, REPO, cli_env, write_config

EXPORTED = ["checkpoint", "rllib_config.json", "sweep_config.json", "trial.json"]


def write_bars(path: Path, seed: int = 7) -> Path:
    from trainables.synthetic import synthetic_bars

    synthetic_bars(1500, seed, "1h").to_csv(path)
    return path


def make_study(results: Path, name: str, data: Path | None = None, trials: int = 2,
               custom: str | None = None, checkpoints: bool = True, relative: bool = False):
    """A tradetune study in ``results``' default database with ``trials`` COMPLETE trials, each
    with a stand-in checkpoint folder under the results directory, its path recorded absolute
    (as older sweeps did) or ``relative`` to the results directory (as sweeps do now); without
    ``checkpoints``, none is recorded."""
    config = make_tiny_sweep(**{"study": name})
    if data is not None:
        config["data"] = {"path": str(data), "synthetic": None, "splits": None,
                          "features": None}
    if custom is not None:
        config["search"]["space_overrides"] = {}
        config["search"]["space"] = custom
    space = get_space("ppo", config["search"]["space_overrides"], custom)
    results.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = create_study(open_storage(f"sqlite:///{results / 'tradetune.db'}"), config, space,
                         data_fingerprint(config["data"]), "test")
    study.sampler = optuna.samplers.RandomSampler(seed=0)
    for number in range(trials):
        trial = study.ask()
        space(trial)
        if checkpoints:
            path = f"{name}/run-1/trial_{number}/checkpoint_000000"
            (results / path).mkdir(parents=True)
            (results / path / "weights.bin").write_text(f"trial {number} of {name}")
            trial.set_user_attr("checkpoint", path if relative else str(results / path))
        trial.set_user_attr("metrics", {"sharpe": 1.0 + number})
        study.tell(trial, 1.0 + number)
    return study


def tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with a hash of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"tradetune {command}: error: "), err
    return err[len(f"tradetune {command}: error: "):].strip()


@pytest.fixture
def study_dir(tmp_path, monkeypatch):
    """Results directory with study "s" (trials 0 and 1) and study "other"; env pointed at it."""
    results = tmp_path / "results"
    make_study(results, "s")
    make_study(results, "other", trials=1)
    monkeypatch.setenv("TRADETUNE_RESULTS", str(results))
    monkeypatch.delenv("TRADETUNE_STORAGE", raising=False)
    return results


def export(out: Path, *extra: str, study: str = "s") -> int:
    return main(["export", "--study", study, "--out", str(out), *extra])


# -- export --out: refuse other files, replace exactly what an export writes ----------------------

def test_export_refuses_a_folder_that_holds_other_files(study_dir, tmp_path, capsys):
    out = tmp_path / "mine"
    (out / "checkpoint").mkdir(parents=True)
    (out / "checkpoint" / "my-model.pt").write_text("the user's own model")
    (out / "notes.txt").write_text("keep me")
    before = tree(out)
    assert export(out) == 1
    message = one_line_error(capsys, "export")
    assert message.startswith(f"--out {out} holds other files (checkpoint, notes.txt) and is "
                              "not an earlier export of study 's'; give a new or empty folder, "
                              "or add --force"), message
    assert tree(out) == before
    assert sorted(os.listdir(tmp_path)) == ["mine", "results"], "a temporary folder was left"


def test_export_refuses_an_export_of_another_study(study_dir, tmp_path, capsys):
    out = tmp_path / "x"
    assert export(out, study="other") == 0
    before = tree(out)
    assert export(out) == 1
    assert "is not an earlier export of study 's'" in one_line_error(capsys, "export")
    assert tree(out) == before


def test_export_force_replaces_only_what_an_export_writes(study_dir, tmp_path, capsys):
    out = tmp_path / "mine"
    (out / "checkpoint").mkdir(parents=True)
    (out / "checkpoint" / "stale.pt").write_text("an older model")
    (out / "policy.onnx").write_text("an older policy")
    (out / "notes.txt").write_text("keep me")
    assert export(out, "--force", "--trial", "0") == 0
    assert sorted(os.listdir(out)) == sorted(EXPORTED + ["notes.txt"])
    assert (out / "notes.txt").read_text() == "keep me"
    assert os.listdir(out / "checkpoint") == ["weights.bin"]
    assert (out / "checkpoint" / "weights.bin").read_text() == "trial 0 of s"
    assert capsys.readouterr().out == (f"exported trial 0 of s to {out}: "
                                       + ", ".join(EXPORTED) + "\n")


def test_a_new_export_leaves_nothing_of_an_earlier_one(study_dir, tmp_path):
    """Trial 1 exported over an export of trial 0 that had a policy.onnx: no --force needed
    (same study), and nothing of trial 0 survives, the ONNX file included."""
    out = tmp_path / "deploy"
    assert export(out, "--trial", "0") == 0
    (out / "policy.onnx").write_text("trial 0's policy")  # as `export --onnx` leaves it
    (out / "checkpoint" / "extra.pt").write_text("trial 0's extra file")
    (out / "README.txt").write_text("the user's own note")
    assert export(out, "--trial", "1") == 0
    assert sorted(os.listdir(out)) == sorted(EXPORTED + ["README.txt"])
    assert os.listdir(out / "checkpoint") == ["weights.bin"]
    assert (out / "checkpoint" / "weights.bin").read_text() == "trial 1 of s"
    marker = json.loads((out / "trial.json").read_text())
    assert (marker["study"], marker["number"]) == ("s", 1)


def test_an_export_older_than_the_study_marker_is_recognised(study_dir, tmp_path):
    out = tmp_path / "old"
    assert export(out) == 0
    marker = json.loads((out / "trial.json").read_text())
    del marker["study"]  # trial.json of older exports; sweep_config.json names the study
    (out / "trial.json").write_text(json.dumps(marker))
    assert export(out) == 0


@pytest.mark.parametrize("where", ["file", "under-a-file", "proc"])
def test_export_out_that_cannot_be_a_folder_is_one_line(study_dir, tmp_path, capsys, where):
    (tmp_path / "afile").write_text("data")
    out = {"file": tmp_path / "afile", "under-a-file": tmp_path / "afile" / "x",
           "proc": Path("/proc/tradetune-export")}[where]
    assert export(out) == 1
    message = one_line_error(capsys, "export")
    if where == "file":
        assert message == f"--out {out} is a file; give a folder (it is created if missing)"
    elif where == "under-a-file":
        assert message == f"--out {out} cannot be created: {tmp_path / 'afile'} is a file; " \
                          "give a folder"
    else:
        assert message == f"cannot write --out {out}: No such file or directory; give a " \
                          "folder you can write"
    assert (tmp_path / "afile").read_text() == "data"
    assert sorted(os.listdir(tmp_path)) == ["afile", "results"]


def test_a_failed_write_changes_nothing(tmp_path):
    """An error while the output is written (or a name missing from the list) leaves the
    folder as it was, no folder it created, and no hidden staging folder."""
    from search.results.outputs import write_folder

    def fails(folder: Path) -> None:
        (folder / "a.txt").write_text("new")
        raise KeyError("half-way")

    def unlisted(folder: Path) -> None:
        (folder / "a.txt").write_text("new")
        (folder / "b.txt").write_text("new, but not in the list")

    out = tmp_path / "out"
    out.mkdir()
    (out / "a.txt").write_text("old")
    with pytest.raises(KeyError):
        write_folder(out, ["a.txt"], fails, ours=lambda f: True, force=False, what="x",
                     storage_url=f"sqlite:///{tmp_path / 's.db'}")
    with pytest.raises(RuntimeError, match=r"\['b.txt'\] are not in the list"):
        write_folder(out, ["a.txt"], unlisted, ours=lambda f: True, force=False, what="x",
                     storage_url=f"sqlite:///{tmp_path / 's.db'}")
    with pytest.raises(KeyError):
        write_folder(tmp_path / "new" / "deeper", ["a.txt"], fails, ours=lambda f: True,
                     force=False, what="x", storage_url=f"sqlite:///{tmp_path / 's.db'}")
    assert sorted(os.listdir(tmp_path)) == ["out"]
    assert tree(out) == {"a.txt": hashlib.sha256(b"old").hexdigest()}


# -- checkpoint paths relative to the results directory -------------------------------------------

def test_a_moved_results_folder_keeps_its_checkpoints(tmp_path, monkeypatch, capsys):
    results = tmp_path / "results"
    make_study(results, "r", relative=True)
    moved = tmp_path / "shared" / "results-copy"
    moved.parent.mkdir()
    shutil.move(results, moved)
    monkeypatch.setenv("TRADETUNE_RESULTS", str(moved))
    monkeypatch.delenv("TRADETUNE_STORAGE", raising=False)
    assert main(["best", "--study", "r", "-f", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["checkpoint"] == str(moved / "r/run-1/trial_1/checkpoint_000000")
    assert main(["export", "--study", "r", "--out", str(tmp_path / "x")]) == 0
    assert (tmp_path / "x" / "checkpoint" / "weights.bin").read_text() == "trial 1 of r"
    monkeypatch.setenv("TRADETUNE_RESULTS", str(results))  # the old place: nothing there now
    assert main(["export", "--study", "r", "--storage", f"sqlite:///{moved / 'tradetune.db'}",
                 "--out", str(tmp_path / "y")]) == 1
    assert one_line_error(capsys, "export") == (
        f"checkpoint of trial 1 is missing: {results}/r/run-1/trial_1/checkpoint_000000; if the "
        "results folder moved, set TRADETUNE_RESULTS to its new place")


# -- report --out: the same rules ------------------------------------------------------------------

def test_report_refuses_other_files_and_replaces_only_its_own(tmp_path, monkeypatch, capsys):
    results = tmp_path / "results"
    make_study(results, "wide", trials=3, checkpoints=False)
    make_study(results, "narrow", trials=1, checkpoints=False)
    monkeypatch.setenv("TRADETUNE_RESULTS", str(results))
    monkeypatch.delenv("TRADETUNE_STORAGE", raising=False)
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<html>the user's home page</html>")
    (site / "history.png").write_bytes(b"the user's picture")
    before = tree(site)
    assert main(["report", "--study", "wide", "--out", str(site)]) == 1
    message = one_line_error(capsys, "report")
    assert message.startswith(f"--out {site} holds other files (history.png, index.html) and "
                              "is not an earlier TradeTune report; "), message
    assert tree(site) == before
    (site / "notes.txt").write_text("keep me")
    assert main(["report", "--study", "wide", "--out", str(site), "--force"]) == 0
    assert (site / "notes.txt").read_text() == "keep me"
    assert "<title>TradeTune report: wide</title>" in (site / "index.html").read_text()
    assert "importances.png" in os.listdir(site)
    # A report over an earlier report needs no --force and removes the images it does not draw.
    assert main(["report", "--study", "narrow", "--out", str(site)]) == 0
    assert sorted(os.listdir(site)) == ["history.png", "index.html", "notes.txt"]


# -- market data changed since launch --------------------------------------------------------------

def test_evaluate_and_report_refuse_data_changed_since_launch(tmp_path, monkeypatch, capsys):
    data = write_bars(tmp_path / "bars.csv")
    results = tmp_path / "results"
    study = make_study(results, "d", data=data)
    monkeypatch.setenv("TRADETUNE_RESULTS", str(results))
    monkeypatch.delenv("TRADETUNE_STORAGE", raising=False)
    launched = study.user_attrs["tradetune_data"]
    write_bars(data, seed=8)  # same shape and dates, other prices
    now = data_fingerprint({"path": str(data), "synthetic": None, "splits": None,
                            "features": None})
    expected = (f"data file {data} changed since study 'd' was launched (fingerprint "
                f"{launched} -> {now}); restore it or launch a new study")
    for args in (["--trial", "0"], ["--split", "val"], ["--top", "2"]):
        assert main(["evaluate", "--study", "d", *args]) == 1
        assert one_line_error(capsys, "evaluate") == expected
    assert main(["report", "--study", "d", "--out", str(tmp_path / "report")]) == 0
    captured = capsys.readouterr()
    assert captured.err == (f"tradetune report: note: {expected}; the report leaves out "
                            "trading the checkpoints\n")
    page = html.unescape((tmp_path / "report" / "index.html").read_text())
    assert page.count(expected) == 2  # the equity section and the overfitting check
    data.unlink()
    assert main(["evaluate", "--study", "d"]) == 1
    assert one_line_error(capsys, "evaluate").startswith(
        f"data file {data} of study 'd' cannot be read (No such file or directory)")


# -- one line, not a traceback --------------------------------------------------------------------

def test_best_into_a_closed_pipe_exits_quietly(study_dir):
    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is written, as after `| head -1`
    try:
        done = subprocess.run([*TRADETUNE, "best", "--study", "s", "--top", "2"], cwd=REPO,
                              env=cli_env(study_dir), stdout=write, stderr=subprocess.PIPE,
                              text=True, timeout=120)
    finally:
        os.close(write)
    assert done.stderr == ""
    assert done.returncode == 141


CUSTOM_SPACE = '''
from spaces import get_space

_ppo = get_space("ppo", {"train_batch_size": 200, "hidden_width": 16})


def space(trial):
    return _ppo(trial)
'''


def test_custom_space_missing_or_changed_on_query_commands(tmp_path, monkeypatch):
    """The study's search.space module is not importable where a query runs: one line naming it
    and PYTHONPATH, no report folder; importable again: it works; edited since launch: refused
    (its trials' settings could not be replayed)."""
    modules = tmp_path / "mine"
    modules.mkdir()
    (modules / "tt_custom_space.py").write_text(CUSTOM_SPACE)
    monkeypatch.syspath_prepend(str(modules))
    results = tmp_path / "results"
    make_study(results, "c", custom="tt_custom_space:space")

    def run(*args: str, pythonpath: bool = False) -> subprocess.CompletedProcess:
        env = cli_env(results)
        if pythonpath:
            env["PYTHONPATH"] += os.pathsep + str(modules)
        return subprocess.run([*TRADETUNE, *args], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=300)

    commands = {"best": ["--top", "1"], "export": ["--out", str(tmp_path / "x")],
                "evaluate": [], "report": ["--out", str(tmp_path / "report")]}
    for command, extra in commands.items():
        done = run(command, "--study", "c", *extra)
        assert done.returncode == 1, done.stdout + done.stderr
        assert done.stderr.startswith(
            f"tradetune {command}: error: study 'c' uses the custom search space "
            "'tt_custom_space:space', but module 'tt_custom_space' cannot be imported here "
            "(ModuleNotFoundError: No module named 'tt_custom_space'); make it importable, "
            "e.g. PYTHONPATH=/folder/holding/tt_custom_space tradetune"), done.stderr
        assert done.stderr.count("\n") == 1
    assert not (tmp_path / "x").exists() and not (tmp_path / "report").exists()
    assert sorted(os.listdir(tmp_path)) == ["mine", "results"]

    done = run("best", "--study", "c", "-f", "json", pythonpath=True)
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)[0]["settings"]["model"]["fcnet_hiddens"]) == {16}

    (modules / "tt_custom_space.py").write_text(CUSTOM_SPACE.replace(
        "return _ppo(trial)", "settings = _ppo(trial)\n    return settings"))
    for command, extra in commands.items():
        if command == "report":
            continue  # its plots need no replay; its trading sections refuse the same way
        done = run(command, "--study", "c", *extra, pythonpath=True)
        assert done.returncode == 1, done.stdout + done.stderr
        assert done.stderr == (f"tradetune {command}: error: the search space of study 'c' "
                               "changed since launch (its code changed), so its trials' "
                               "settings cannot be replayed; restore the space as it was at "
                               "launch\n")


# -- a real sweep on a data file, its results folder moved ---------------------------------------

@pytest.mark.slow
def test_moved_results_folder_exports_and_evaluates(tmp_path, ray_session, monkeypatch, capsys):
    """Checkpoints are stored relative to the results directory: after moving the folder and
    pointing TRADETUNE_RESULTS at the new place, export (with ONNX) and evaluate still work.
    Then: a later export without --onnx leaves no policy.onnx of the earlier one; changed
    market data is refused until it is restored; a study from before fingerprints and
    relative paths (absolute checkpoint paths, no data fingerprint) keeps working."""
    data = write_bars(tmp_path / "bars.csv")
    results = tmp_path / "results"
    config = make_tiny_sweep(**{"study": "moved", "search.num_samples": 2})
    config["data"] = {"path": str(data), "synthetic": None, "splits": None, "features": None}
    monkeypatch.setenv("TRADETUNE_RESULTS", str(results))
    monkeypatch.delenv("TRADETUNE_STORAGE", raising=False)
    assert main(["launch", str(write_config(tmp_path / "sweep.yaml", config))]) == 0
    stored = {t.number: t.user_attrs["checkpoint"] for t in optuna.load_study(
        study_name="moved", storage=f"sqlite:///{results / 'tradetune.db'}").trials}
    assert all(not Path(p).is_absolute() and p.startswith("moved/run-") for p in stored.values())

    moved = tmp_path / "elsewhere" / "shared-results"
    moved.parent.mkdir()
    shutil.move(results, moved)
    monkeypatch.setenv("TRADETUNE_RESULTS", str(moved))
    capsys.readouterr()
    assert main(["evaluate", "--study", "moved", "-f", "json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    best = scored["trial"]
    out = tmp_path / "deploy"
    assert main(["export", "--study", "moved", "--out", str(out), "--onnx"]) == 0
    assert sorted(os.listdir(out)) == sorted(EXPORTED + list(BUNDLE_FILES))
    assert tree(out / "checkpoint") == tree(moved / stored[best])

    other = 1 - best
    assert main(["export", "--study", "moved", "--trial", str(other), "--out", str(out)]) == 0
    assert sorted(os.listdir(out)) == EXPORTED, "policy.onnx of the earlier export survived"
    assert tree(out / "checkpoint") == tree(moved / stored[other])

    original = data.read_bytes()
    write_bars(data, seed=8)
    capsys.readouterr()
    assert main(["evaluate", "--study", "moved"]) == 1
    assert "changed since study 'moved' was launched" in one_line_error(capsys, "evaluate")
    data.write_bytes(original)
    assert main(["evaluate", "--study", "moved", "-f", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == scored

    # An older study: absolute checkpoint paths, no data fingerprint.
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{moved / 'tradetune.db'}")
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM study_user_attributes WHERE key = 'tradetune_data'"))
        for number, path in stored.items():
            connection.execute(text(
                "UPDATE trial_user_attributes SET value_json = :path WHERE key = 'checkpoint' "
                "AND trial_id = (SELECT trial_id FROM trials WHERE number = :number)"),
                {"path": json.dumps(str(moved / path)), "number": number})
    engine.dispose()
    monkeypatch.setenv("TRADETUNE_RESULTS", str(tmp_path / "nowhere"))
    assert main(["evaluate", "--study", "moved", "--storage",
                 f"sqlite:///{moved / 'tradetune.db'}", "-f", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == scored
