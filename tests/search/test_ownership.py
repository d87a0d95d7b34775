"""Nothing a user owns is destroyed: a study's folder is known by more than its name
(``search/study/folders.py``), and every path a command writes follows one rule
(``search/results/outputs.py``)."""
from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from sweep_helpers import TRADETUNE, REPO, add_study, cli_env, run_cli, write_config


def _run(args: list[str], results: Path, storage: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*TRADETUNE, *args], cwd=REPO, env=cli_env(results, storage),
                          text=True, capture_output=True, timeout=120)


def _one_line_error(done: subprocess.CompletedProcess, command: str, says: str,
                    code: int = 1) -> None:
    assert done.returncode == code, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"tradetune {command}: error: "), done.stderr
    assert says in lines[0], lines[0]


def _digest(top: Path) -> dict[str, str]:
    return {str(p): ("dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted([top, *top.rglob("*")])}


@pytest.fixture
def twins(tmp_path, monkeypatch):
    """Two studies named ``qs1``: one in the default SQLite file, one in ``other.db``."""
    results = tmp_path / "results"
    monkeypatch.setenv("TRADETUNE_RESULTS", str(results))
    monkeypatch.delenv("TRADETUNE_STORAGE", raising=False)
    default = f"sqlite:///{results / 'tradetune.db'}"
    other = f"sqlite:///{tmp_path / 'other.db'}"
    first = add_study(default, results, "qs1", [0.5, 1.5])
    second = add_study(other, results, "qs1", [2.5])
    return {"results": results, "default": default, "other": other, "first": first,
            "second": second}


# -- row 1: a study's folder is its own -----------------------------------------------------------

def test_same_name_in_two_storages_gets_two_folders_each_marked(twins):
    first, second = twins["first"], twins["second"]
    assert first == twins["results"] / "qs1"
    assert second.parent == twins["results"] and second.name.startswith("qs1-") and first != second
    marks = [json.loads((f / ".tradetune-study.json").read_text()) for f in (first, second)]
    assert marks[0]["uid"] != marks[1]["uid"]
    assert marks[1]["storage"] == twins["other"] and marks[0]["study"] == "qs1"


def test_delete_in_one_storage_leaves_the_same_named_study_of_another_whole(twins):
    """The reported loss: `delete --study qs1 --storage other.db` removed the default storage's
    qs1 folder, so that study's checkpoints were gone."""
    results, first = twins["results"], twins["first"]
    before = _digest(first)
    done = _run(["delete", "--study", "qs1", "--storage", twins["other"], "--yes"], results)
    assert done.returncode == 0, done.stderr
    assert str(twins["second"]) in done.stdout and not twins["second"].exists()
    assert _digest(first) == before
    best = json.loads(_run(["best", "--study", "qs1", "-f", "json"], results).stdout)
    assert all(row["checkpoint"] and Path(row["checkpoint"]).is_dir() for row in best)


def test_delete_leaves_a_folder_whose_marker_names_another_study(twins):
    """A folder whose marker was rewritten (or copied from another study) is not this study's:
    delete says it left it."""
    first = twins["first"]
    marker = first / ".tradetune-study.json"
    mark = json.loads(marker.read_text())
    marker.write_text(json.dumps({**mark, "uid": "0123456789abcdef", "storage": "elsewhere"}))
    before = _digest(first)
    done = _run(["delete", "--study", "qs1", "--yes"], twins["results"])
    assert done.returncode == 0, done.stderr
    assert "its results folder was left" in done.stdout and "study 'qs1' in elsewhere" in done.stdout
    assert _digest(first) == before


def test_a_study_from_before_markers_keeps_its_unmarked_folder_on_delete(tmp_path, monkeypatch):
    results = tmp_path / "results"
    monkeypatch.setenv("TRADETUNE_RESULTS", str(results))
    url = f"sqlite:///{results / 'tradetune.db'}"
    folder = add_study(url, results, "old", [1.0], legacy=True)
    assert not (folder / ".tradetune-study.json").exists()
    before = _digest(folder)
    done = _run(["delete", "--study", "old", "--yes"], results)
    assert done.returncode == 0, done.stderr
    assert "carries no study marker" in done.stdout
    assert _digest(folder) == before


def test_resume_and_promote_refuse_a_folder_that_is_another_studys(twins):
    """Writers check the marker before writing: nothing is written, one line says whose."""
    from search.errors import StudyError
    from search.study import folders, studies
    from search.study.storage import open_storage

    study = studies.load_study(open_storage(twins["other"]), "qs1")
    assert folders.check_owned(study, twins["other"]) == twins["second"]
    mark = twins["second"] / ".tradetune-study.json"
    mark.write_text(mark.read_text().replace(study.user_attrs["tradetune_uid"], "f" * 16))
    before = _digest(twins["second"])
    with pytest.raises(StudyError, match=r"belongs to study 'qs1' in .*other\.db; nothing was "
                                         r"written there"):
        folders.check_owned(study, twins["other"])
    assert _digest(twins["second"]) == before
    done = _run(["promote", "--study", "qs1", "--storage", twins["other"], "--seeds", "1"],
                twins["results"])
    _one_line_error(done, "promote", "belongs to study 'qs1'")
    assert _digest(twins["second"]) == before


def test_a_legacy_folder_is_adopted_by_its_study_and_refused_to_a_twin(tmp_path, monkeypatch):
    """Two studies from before markers shared `results/old`: the first writer marks it; the
    other is then refused instead of writing among the first one's checkpoints."""
    from search.errors import StudyError
    from search.study import folders, studies
    from search.study.storage import open_storage

    results = tmp_path / "results"
    monkeypatch.setenv("TRADETUNE_RESULTS", str(results))
    urls = [f"sqlite:///{results / 'tradetune.db'}", f"sqlite:///{tmp_path / 'b.db'}"]
    for url in urls:
        add_study(url, results, "old", [1.0], legacy=True)
    first, second = (studies.load_study(open_storage(url), "old") for url in urls)
    assert folders.check_owned(first, urls[0]) == results / "old"
    assert first.user_attrs.get("tradetune_uid")
    with pytest.raises(StudyError, match="belongs to study 'old'"):
        folders.check_owned(second, urls[1])


def test_dry_run_says_the_name_folder_is_another_studys(twins, tmp_path):
    config = write_config(tmp_path / "c.yaml", {"study": "qs1", "data": {"synthetic": {
        "n_bars": 600}}, "search": {"num_samples": 1}})
    done = _run(["launch", str(config), "--storage", f"sqlite:///{tmp_path / 'third.db'}",
                 "--dry-run"], twins["results"])
    assert done.returncode == 0, done.stderr
    assert (f"# results folder {twins['first']} belongs to study 'qs1' in {twins['default']}; "
            f"launch uses {twins['results'] / 'qs1-<id>'}") in done.stdout


# -- row 2: one rule for every path a command writes -----------------------------------------------

def _database(twins) -> Path:
    return twins["results"] / "tradetune.db"


@pytest.mark.parametrize("force", [False, True])
def test_evaluate_never_writes_actions_over_the_storage_file(twins, force):
    """The reported loss: `evaluate --actions <the study's own SQLite file>` overwrote it."""
    database = _database(twins)
    before = hashlib.sha256(database.read_bytes()).hexdigest()
    done = _run(["evaluate", "--study", "qs1", "--actions", str(database),
                 *(["--force"] if force else [])], twins["results"])
    _one_line_error(done, "evaluate", "is a study storage file")
    assert "even with --force" in done.stderr
    assert hashlib.sha256(database.read_bytes()).hexdigest() == before


def test_evaluate_refuses_an_existing_file_and_a_path_in_a_studys_folder(twins, tmp_path):
    mine = tmp_path / "mine.csv"
    mine.write_text("my own numbers\n")
    done = _run(["evaluate", "--study", "qs1", "--actions", str(mine)], twins["results"])
    _one_line_error(done, "evaluate", "exists and was not written by this command")
    assert "add --force to replace it" in done.stderr
    assert mine.read_text() == "my own numbers\n"
    inside = twins["second"] / "run-1" / "actions.csv"
    done = _run(["evaluate", "--study", "qs1", "--actions", str(inside), "--force"],
                twins["results"])
    _one_line_error(done, "evaluate", "is inside the results folder of a study")
    assert not inside.exists()
    looks = json.loads(_run(["status", "--study", "qs1", "-f", "json"], twins["results"]).stdout)
    assert looks["test_looks"]["count"] == 0  # refused before the test split was touched


def test_force_without_actions_is_a_usage_error(twins):
    done = _run(["evaluate", "--study", "qs1", "--force"], twins["results"])
    assert done.returncode == 2 and "--force replaces an existing --actions file" in done.stderr


def test_api_refuses_the_storage_file_in_python_terms(twins):
    import tradetune

    study = tradetune.open_study("qs1")
    with pytest.raises(tradetune.OutputError, match=r"^actions .* is a study storage file") as error:
        study.evaluate(actions=_database(twins), force=True)
    assert error.value.cli_message.startswith("--actions ")


@pytest.mark.parametrize("command", ["export", "report"])
def test_no_output_folder_inside_a_studys_folder_or_onto_storage_files(twins, tmp_path, command):
    before = _digest(twins["results"])
    done = _run([command, "--study", "qs1", "--out", str(twins["first"]), "--force"],
                twins["results"])
    _one_line_error(done, command, "is inside the results folder of a study")
    database = tmp_path / "index.html"  # a storage whose file has a name the report writes
    database.write_bytes(_database(twins).read_bytes())
    done = _run([command, "--study", "qs1", "--storage", f"sqlite:///{database}", "--out",
                 str(tmp_path), "--force"], twins["results"])
    if command == "report":
        _one_line_error(done, command, "is a study storage file")
    assert _digest(twins["results"]) == before


@pytest.mark.slow
def test_two_launches_of_one_name_in_two_storages_keep_their_own_checkpoints(tmp_path, tiny_sweep):
    """The whole path, for real: two sweeps named qs1 (default storage, then another); the
    second says where its results go; deleting it leaves the first's checkpoints and trials."""
    results = tmp_path / "results"
    config = write_config(tmp_path / "qs1.yaml", tiny_sweep(**{
        "study": "qs1", "search.num_samples": 1, "training.max_iterations": 1}))
    first = run_cli(["launch", str(config)], results)
    assert first.returncode == 0, first.stdout + first.stderr
    other = f"sqlite:///{tmp_path / 'other.db'}"
    second = run_cli(["launch", str(config), "--storage", other], results)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"results folder {results / 'qs1'} belongs to study 'qs1' in sqlite:///" in second.stderr
    own = [p for p in results.iterdir() if p.name.startswith("qs1-")]
    assert len(own) == 1 and f"this study's results go to {own[0]}" in second.stderr
    before = _digest(results / "qs1")
    deleted = run_cli(["delete", "--study", "qs1", "--storage", other, "--yes"], results)
    assert deleted.returncode == 0 and not own[0].exists(), deleted.stderr
    assert _digest(results / "qs1") == before
    best = json.loads(run_cli(["best", "--study", "qs1", "-f", "json"], results).stdout)
    assert best and Path(best[0]["checkpoint"]).is_dir()


def test_drivers_adopting_a_legacy_folder_at_once_agree_on_its_owner(tmp_path, monkeypatch):
    """Six drivers resuming a study from before markers raced to mark its folder: the losers
    had already given the study another id and refused the folder as another study's (seen in
    tests/search/test_many_drivers.py on a full-suite run). One marker wins; all take its id."""
    import threading

    from search.study import folders, studies
    from search.study.storage import open_storage

    results = tmp_path / "results"
    monkeypatch.setenv("TRADETUNE_RESULTS", str(results))
    url = f"sqlite:///{results / 'tradetune.db'}"
    add_study(url, results, "old", [1.0], legacy=True)
    handles = [studies.load_study(open_storage(url), "old") for _ in range(6)]
    assert all(h.user_attrs.get("tradetune_uid") is None for h in handles)
    start, outcomes = threading.Barrier(len(handles)), []

    def adopt(study):
        start.wait()
        try:
            outcomes.append(folders.check_owned(study, url))
        except Exception as exc:  # noqa: BLE001 - the test reports it
            outcomes.append(exc)

    threads = [threading.Thread(target=adopt, args=(h,)) for h in handles]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == [results / "old"] * len(handles), outcomes
    mark = json.loads((results / "old" / ".tradetune-study.json").read_text())
    fresh = studies.load_study(open_storage(url), "old")
    assert fresh.user_attrs["tradetune_uid"] == mark["uid"]
    assert not [p for p in (results / "old").iterdir() if p.name.startswith("..tradetune")]
