"""The command line as users run it: ``tt`` from any directory, study management (``studies``,
``delete``), ``launch --dry-run``, ``--version``, output into a closed pipe, and ``--help``.

Studies here are written straight into real SQLite (and PostgreSQL) storages through the same
code a sweep uses, with checkpoint folders on disk: no training, so every test is fast.
"""
from __future__ import annotations

import hashlib
import json
import os
import pty
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import make_tiny_sweep
from sweep_helpers import REPO, TRADETUNE, cli_env, two_studies, write_config  # noqa: F401
from sweep_helpers import add_study as _add_study

TT = str(REPO / "tt")
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"


def _bars(n: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    return pd.DataFrame({"date": pd.date_range("2021-01-01", periods=n, freq="1h"),
                         "open": close, "high": close * 1.01, "low": close * 0.99,
                         "close": close, "volume": rng.uniform(1, 10, n)})


def _run(args: list[str], results: Path, cwd: Path = REPO, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*TRADETUNE, *args], cwd=cwd, env=cli_env(results), text=True,
                          capture_output=True, timeout=120, **kwargs)


# Runs several commands in one fresh process (each a call of ``main``, with its own stdout and
# stderr): a process start costs seconds on a busy machine.
_MANY = """
import contextlib, io, json, sys, traceback
from search.cli import main
outcomes = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit:
            code = exit.code
        except BaseException:
            traceback.print_exc()
            code = "raised"
    outcomes.append([code, out.getvalue(), err.getvalue()])
print(json.dumps(outcomes))
"""


def _run_many(argvs: list[list[str]], results: Path) -> list[subprocess.CompletedProcess]:
    done = subprocess.run([sys.executable, "-c", _MANY, json.dumps(argvs)], cwd=REPO,
                          env=cli_env(results), text=True, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return [subprocess.CompletedProcess(argv, code, out, err)
            for argv, (code, out, err) in zip(argvs, json.loads(done.stdout.splitlines()[-1]))]


def _snapshot(top: Path) -> dict[str, str]:
    if not top.exists():
        return {}
    return {str(p): ("dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted([top, *top.rglob("*")])}


def _one_line_error(done: subprocess.CompletedProcess, command: str, says: str) -> None:
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"tradetune {command}: error: "), done.stderr
    assert says in lines[0], lines[0]


# -- tt: user paths are taken from where the user stands -------------------------------------------

def test_tt_takes_relative_paths_from_the_callers_directory(two_studies, tmp_path):
    """`<repo>/tt` used to cd into the repository, so a relative data file, config, storage or
    --out resolved there (not found, or written into the repository)."""
    cwd = tmp_path / "elsewhere"
    (cwd / "data").mkdir(parents=True)
    _bars().to_csv(cwd / "data" / "bars.csv", index=False)
    env = cli_env(two_studies["results"])

    def tt(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([TT, "tradetune", *args], cwd=cwd, env=env, text=True,
                              capture_output=True, timeout=120)

    done = tt("data", "data/bars.csv", "-f", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"] > 0

    config = make_tiny_sweep(**{"study": "from-elsewhere"})
    config["data"] = {**config["data"], "path": "data/bars.csv", "synthetic": None}
    write_config(cwd / "sweep.yaml", config)
    done = tt("launch", "sweep.yaml", "--dry-run", "--storage", "sqlite:///local.db")
    assert done.returncode == 0, done.stderr
    effective = yaml.safe_load(done.stdout)
    assert effective["data"]["path"] == str(cwd / "data" / "bars.csv")
    assert effective["storage"] == f"sqlite:///{cwd / 'local.db'}"

    rel_db = os.path.relpath(two_studies["results"] / "tradetune.db", cwd)
    done = tt("export", "--study", "alpha", "--storage", f"sqlite:///{rel_db}", "--out", "out")
    assert done.returncode == 0, done.stderr
    assert (cwd / "out" / "trial.json").is_file() and (cwd / "out" / "checkpoint").is_dir()
    assert not (REPO / "out").exists()
    done = tt("best", "--study", "alpha", "--storage", f"sqlite:///{rel_db}", "-f", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["value"] == 1.5


# -- --version -------------------------------------------------------------------------------------

def test_version_names_the_stack_without_importing_it():
    from importlib import metadata

    code = ("import sys; from search.cli import main\n"
            "try:\n    main(['--version'])\nexcept SystemExit as exit:\n    code = exit.code\n"
            "assert not {'ray', 'torch', 'pandas'} & set(sys.modules), 'heavy import'\n"
            "sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"tradetune {metadata.version('tradetune')}"
    for name in ("ray", "optuna", "torch", "tensortrade"):
        assert f"{name} {metadata.version(name)}" in done.stdout, name
    assert "(Tune, RLlib)" in done.stdout
    # --help names every package --version prints (it used to leave out numpy and pandas)
    from search.cli.parser import build_parser

    help_text = " ".join(build_parser().format_help().split())
    for line in lines[1:]:
        name = line.split()[0]
        assert name.lower() in help_text.lower(), (name, help_text)


# -- studies ---------------------------------------------------------------------------------------

def test_studies_lists_every_study_with_counts_and_best(two_studies):
    done = _run(["studies", "-f", "json"], two_studies["results"])
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [r["study"] for r in rows] == ["alpha", "beta"]
    alpha = rows[0]
    assert alpha["counts"] == {"COMPLETE": 2, "RUNNING": 0, "FAIL": 1, "PRUNED": 0, "WAITING": 0}
    assert alpha["trials"] == 3 and alpha["best_value"] == 1.5 and alpha["best_trial"] == 1
    assert alpha["algorithm"] == "ppo" and alpha["data"].startswith("synthetic (")
    assert alpha["created"][:4].isdigit()
    table = _run(["studies"], two_studies["results"])
    assert table.returncode == 0, table.stderr
    header, first, second = table.stdout.splitlines()
    assert header.split()[:4] == ["study", "created", "algorithm", "complete"]
    assert first.startswith("alpha ") and "1.5 (#1)" in first and " ppo " in first
    assert second.startswith("beta ")


def test_studies_on_a_storage_without_studies_is_one_line(tmp_path):
    done = _run(["studies"], tmp_path / "results")
    _one_line_error(done, "studies", "no study database at")
    assert not (tmp_path / "results").exists()


def test_study_management_imports_no_ray_torch_or_pandas(two_studies):
    """Like best/status/export, listing and deleting studies answer without the heavy stack."""
    code = ("import sys; from search.cli import main\n"
            "for argv in (['studies'], ['status'], ['best', '--study', 'alpha'],\n"
            "             ['delete', '--study', 'beta', '--yes']):\n"
            "    assert main(argv) == 0, argv\n"
            "    heavy = {'ray', 'torch', 'pandas'} & set(sys.modules)\n"
            "    assert not heavy, (argv, heavy)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, env=cli_env(two_studies["results"]), timeout=120)
    assert done.returncode == 0, done.stderr


# -- delete ----------------------------------------------------------------------------------------

def test_delete_removes_the_study_and_its_results_folder_only(two_studies):
    results = two_studies["results"]
    beta_before = _snapshot(results / "beta")
    done = _run(["delete", "--study", "alpha", "--yes"], results)
    assert done.returncode == 0, done.stderr
    assert "deleted study 'alpha' (3 trials)" in done.stdout
    assert str(results / "alpha") in done.stdout
    assert not (results / "alpha").exists()
    assert _snapshot(results / "beta") == beta_before
    assert (results / "notes.txt").read_text() == "mine"
    rows = json.loads(_run(["studies", "-f", "json"], results).stdout)
    assert [r["study"] for r in rows] == ["beta"] and rows[0]["counts"]["COMPLETE"] == 1


def test_delete_without_a_terminal_needs_yes(two_studies):
    results = two_studies["results"]
    before = _snapshot(results)
    done = _run(["delete", "--study", "alpha"], results, stdin=subprocess.DEVNULL)
    _one_line_error(done, "delete", "stdin is not a terminal to ask on; add --yes")
    assert _snapshot(results) == before


@pytest.mark.parametrize("answer, deleted", [("n", False), ("", False), ("y", True)])
def test_delete_asks_on_a_terminal(two_studies, answer, deleted):
    results = two_studies["results"]
    before = _snapshot(results)
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen([*TRADETUNE, "delete", "--study", "alpha"], cwd=REPO,
                                   env=cli_env(results), stdin=follower, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        os.write(leader, f"{answer}\n".encode())
        out, err = process.communicate(timeout=60)
    finally:
        os.close(leader)
        os.close(follower)
    assert "delete study 'alpha' (3 trials) from sqlite:" in err
    assert f"and its results folder {results / 'alpha'}? [y/N]" in err
    if deleted:
        assert process.returncode == 0, err
        assert not (results / "alpha").exists() and (results / "beta").is_dir()
    else:
        assert process.returncode == 1 and "study 'alpha' not deleted" in err, err
        assert "Traceback" not in err
        assert _snapshot(results) == before


def test_delete_of_a_missing_study_suggests_and_changes_nothing(two_studies):
    results = two_studies["results"]
    before = _snapshot(results)
    done = _run(["delete", "--study", "alpah", "--yes"], results)
    _one_line_error(done, "delete", "no study named 'alpah' in sqlite:")
    assert "did you mean 'alpha'?" in done.stderr
    assert _snapshot(results) == before


def test_delete_refuses_a_study_whose_sweep_is_running(tmp_path, monkeypatch):
    results = tmp_path / "results"
    monkeypatch.setenv("TRADETUNE_RESULTS", str(results))
    _add_study(f"sqlite:///{results / 'tradetune.db'}", results, "busy", [1.0],
               running_driver=True)
    before = _snapshot(results)
    done = _run(["delete", "--study", "busy", "--yes"], results)
    _one_line_error(done, "delete", "study 'busy' is being run by driver here; stop that sweep")
    assert _snapshot(results) == before


# -- launch --dry-run ------------------------------------------------------------------------------

def test_dry_run_checks_resources_without_starting_ray(tmp_path):
    """More CPUs per trial than this machine has (or a GPU where there is none) would wait
    forever at launch; the dry run says so too, counting the machine without Ray."""
    import os

    results = tmp_path / "results"
    path = write_config(tmp_path / "sweep.yaml", make_tiny_sweep(**{"study": "dry-res"}))
    many = (os.cpu_count() or 1) + 1
    done = _run(["launch", str(path), "--dry-run", "--set", f"resources.cpus_per_trial={many}"],
                results)
    _one_line_error(done, "launch", f"a trial needs {many} CPUs on one node")
    assert not results.exists()
    env_gpus = {"CUDA_VISIBLE_DEVICES": ""}  # no GPU visible, whatever the machine has
    done = subprocess.run([*TRADETUNE, "launch", str(path), "--dry-run", "--set",
                           "resources.gpus_per_trial=1"], cwd=REPO,
                          env={**cli_env(results), **env_gpus}, text=True, capture_output=True,
                          timeout=120)
    _one_line_error(done, "launch", "has no GPU")
    assert not results.exists()


def test_dry_run_checks_and_prints_but_creates_nothing(tmp_path):
    results = tmp_path / "results"
    _bars().to_csv(tmp_path / "bars.csv", index=False)
    config = make_tiny_sweep(**{"study": "dry"})
    config["data"] = {**config["data"], "path": str(tmp_path / "bars.csv"), "synthetic": None}
    path = write_config(tmp_path / "sweep.yaml", config)
    before = _snapshot(tmp_path)
    code = ("import sys; from search.cli import main; rc = main(sys.argv[1:]);"
            "assert 'ray' not in sys.modules, 'Ray imported'; sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code, "launch", str(path), "--dry-run",
                           "--set", "search.num_samples=3"], cwd=REPO, env=cli_env(results),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert _snapshot(tmp_path) == before  # no results folder, no SQLite file
    effective = yaml.safe_load(done.stdout)  # the whole output is YAML: it can be launched
    assert effective["search"]["num_samples"] == 3 and effective["study"] == "dry"
    assert effective["storage"] == f"sqlite:///{results / 'tradetune.db'}"
    assert effective["training"]["max_iterations"] == config["training"]["max_iterations"]
    data = _run(["data", str(tmp_path / "bars.csv")], results)
    assert data.returncode == 0, data.stderr
    for line in data.stdout.splitlines():  # the same split table `tradetune data` prints
        assert f"#   {line}\n" in done.stdout, line
    assert "nothing was created" in done.stdout


def test_dry_run_refuses_what_launch_refuses(two_studies, tmp_path):
    results = two_studies["results"]
    before = _snapshot(results)
    good = write_config(tmp_path / "good.yaml", make_tiny_sweep(**{"study": "fresh"}))
    rows = {  # extra arguments -> what the one error line says
        ("--study", "alpha"): "study 'alpha' already exists",
        ("--storage", "sqlite://"): "in-memory storage 'sqlite://'",
        ("--set", "data.synthetic=null", "--set", "data.path=nope.csv"): "nope.csv",
        ("--storage", "postgresql://postgres@127.0.0.1:1/none"):
            "cannot open storage postgresql://postgres@127.0.0.1:1/none",
        ("--storage", "mysql://u@127.0.0.1/db"): "no MySQL driver is installed",
    }
    outcomes = _run_many([["launch", str(good), "--dry-run", *extra] for extra in rows], results)
    for says, done in zip(rows.values(), outcomes):
        _one_line_error(done, "launch", says)
    assert _snapshot(results) == before


def test_dry_run_refuses_values_outside_a_parameter_s_domain(tmp_path):
    """Issue 22 row 8: these passed validation and --dry-run, then every trial failed (a
    diverged loss, or a bare 'RuntimeError' for a ZeroDivisionError)."""
    results = tmp_path / "results"
    good = write_config(tmp_path / "good.yaml", make_tiny_sweep(**{"study": "fresh"}))
    rows = {
        ("--set", "search.space_overrides.window_size=0"):
            "parameter 'window_size': a fixed value must be >= 1",
        ("--set", "search.space_overrides.lr=-0.1"): "parameter 'lr': a fixed value must be > 0",
        ("--set", "search.space_overrides.gamma=1.5"):
            "parameter 'gamma': a fixed value must be in (0, 1]",
        ("--set", "search.space_overrides.train_batch_size=1",
         "--set", "search.space_overrides.num_minibatches=4"):
            "train_batch_size (1) must be at least num_minibatches (4)",
        ("--set", "env.initial_cash=0.001"): "env.initial_cash must be at least 100, got 0.001",
    }
    outcomes = _run_many([["launch", str(good), "--dry-run", *extra] for extra in rows], results)
    for says, done in zip(rows.values(), outcomes):
        _one_line_error(done, "launch", says)
    assert not results.exists()


def test_evaluate_top_refuses_split_instead_of_ignoring_it(two_studies):
    """Issue 22 row 4: `evaluate --top 2 --split val` showed test figures and recorded a look
    at the test split. Every option a command would ignore is refused (exit 2), before the
    study is touched."""
    results = two_studies["results"]
    before = _snapshot(results)
    argvs = [["evaluate", "--study", "alpha", "--top", "2", "--split", "val"],
             ["evaluate", "--study", "alpha", "--top", "2", "--split", "test"],
             ["evaluate", "--study", "alpha", "--top", "2", "--trial", "1"],
             ["evaluate", "--study", "alpha", "--top", "2", "--actions", "a.csv"]]
    outcomes = _run_many(argvs, results)
    for argv, done in zip(argvs, outcomes):
        assert done.returncode == 2, (argv, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("tradetune evaluate: error: "), lines
    assert "--top compares validation and test side by side (a look at the test split), so it " \
           "takes no --split; for the validation split alone use --split val with --trial N " \
           "(or nothing, for the best)" in outcomes[0].stderr
    assert _snapshot(results) == before  # no test look recorded


def test_launch_refuses_an_option_and_a_set_of_the_same_key(tmp_path):
    """The variant of row 4 on launch: --num-samples silently won over --set
    search.num_samples (and --study over --set study); one of the two was ignored."""
    results = tmp_path / "results"
    good = write_config(tmp_path / "good.yaml", make_tiny_sweep(**{"study": "fresh"}))
    argvs = [["launch", str(good), "--dry-run", "--num-samples", "3", "--set",
              "search.num_samples=4"],
             ["launch", str(good), "--study", "a", "--set", "study=b"]]
    outcomes = _run_many(argvs, results)
    assert [done.returncode for done in outcomes] == [2, 2], [d.stderr for d in outcomes]
    assert outcomes[0].stderr.strip() == (
        "tradetune launch: error: --num-samples and --set 'search.num_samples=4' both set "
        "search.num_samples, and only one of them would be used; give one")
    assert "--study and --set 'study=b' both set study" in outcomes[1].stderr
    assert not results.exists()


# -- storages: what each command may create --------------------------------------------------------

def test_read_commands_create_no_sqlite_file(tmp_path):
    """`resume --study ghost` used to create the SQLite file (with Optuna's tables) before
    saying the study does not exist."""
    results = tmp_path / "results"
    results.mkdir()
    argvs = [["resume", "--study", "ghost"], ["best", "--study", "ghost"], ["status"],
             ["studies"], ["delete", "--study", "ghost", "--yes"],
             ["report", "--study", "ghost", "--out", str(tmp_path / "report")],
             ["export", "--study", "ghost", "--out", str(tmp_path / "export")]]
    outcomes = _run_many(argvs, results)
    assert list(tmp_path.rglob("*")) == [results]
    for argv, done in zip(argvs, outcomes):
        _one_line_error(done, argv[0], "no study database at")


@pytest.fixture
def empty_pg_database():
    """A fresh, empty database on the shared PostgreSQL server, dropped afterwards."""
    import psycopg

    name = f"tt_empty_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _tables(database: str) -> list[str]:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/{database}") as connection:
        return [row[0] for row in connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")]


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_read_commands_create_no_tables_in_an_empty_postgres_database(empty_pg_database,
                                                                     tmp_path, scheme):
    """`resume` used to create Optuna's tables in an empty database before saying the study
    does not exist; `postgres://` used to fail with a driver error."""
    results = tmp_path / "results"
    url = f"{scheme}://postgres@127.0.0.1:5432/{empty_pg_database}"
    good = write_config(tmp_path / "good.yaml", make_tiny_sweep(**{"study": "fresh"}))
    argvs = [["resume", "--study", "ghost"], ["best", "--study", "ghost"], ["status"],
             ["status", "--study", "ghost"], ["studies"], ["delete", "--study", "ghost", "--yes"],
             ["report", "--study", "ghost", "--out", str(tmp_path / "report")],
             ["evaluate", "--study", "ghost"], ["launch", str(good), "--dry-run"]]
    *reads, dry = _run_many([[*argv, "--storage", url] for argv in argvs], results)
    assert _tables(empty_pg_database) == []
    assert list(tmp_path.rglob("*")) == [tmp_path / "good.yaml"]
    for argv, done in zip(argvs, reads):
        _one_line_error(done, argv[0], f"storage {url} holds no studies yet")
    assert dry.returncode == 0, dry.stderr
    assert "launch creates Optuna's tables" in dry.stdout


def test_postgres_scheme_is_postgresql(empty_pg_database, tmp_path):
    """`postgres://` (what libpq and hosting services print) opens the same PostgreSQL storage
    as `postgresql://`."""
    results = tmp_path / "results"
    _add_study(f"postgres://postgres@127.0.0.1:5432/{empty_pg_database}", results, "pg", [2.0])
    done = _run(["studies", "-f", "json", "--storage",
                 f"postgresql://postgres@127.0.0.1:5432/{empty_pg_database}"], results)
    assert done.returncode == 0, done.stderr
    assert [r["study"] for r in json.loads(done.stdout)] == ["pg"]


# -- a closed pipe ---------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["best", "--study", "alpha"], ["status"], ["studies"],
                                  ["status", "--study", "alpha", "-f", "json"], ["--version"],
                                  ["data", "BARS"]])
def test_output_into_a_closed_pipe_stops_quietly(two_studies, argv):
    """`tradetune best ... | head` used to end with a BrokenPipeError traceback."""
    bars = two_studies["root"] / "bars.csv"
    _bars().to_csv(bars, index=False)
    argv = [str(bars) if a == "BARS" else a for a in argv]
    process = subprocess.Popen([*TRADETUNE, *argv], cwd=REPO, env=cli_env(two_studies["results"]),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.close()  # the reader is gone before the first line is written
    err = process.stderr.read()
    process.wait(timeout=120)
    assert err == "", err
    assert process.returncode == 141


# -- --help ----------------------------------------------------------------------------------------

def test_every_option_says_its_default_and_accepted_values():
    import argparse

    from search.cli.parser import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert {"studies", "delete"} <= set(commands.choices)
    for name, sub in commands.choices.items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction) or action.dest == "debug":
                continue
            where = f"{name} {'/'.join(action.option_strings) or action.dest}"
            assert action.help, f"{where} has no help"
            for choice in action.choices or ():
                assert choice in action.help, f"{where}: help does not name {choice!r}"
            if action.default not in (None, False, [], argparse.SUPPRESS):
                assert str(action.default) in action.help, f"{where}: default not in help"
            if action.option_strings and not action.required and action.default is None \
                    and action.nargs != 0:
                assert "default" in action.help or action.help.startswith(("instead", "also")), \
                    f"{where}: help does not say what happens without it"


@pytest.mark.slow
def test_a_sweep_whose_reader_goes_away_stops_as_on_ctrl_c(tmp_path):
    """`tradetune launch ... | head -1`: the failing write inside Tune's callbacks used to fail
    trials and end in a TuneError traceback. Now it stops like Ctrl-C, quietly, and the study
    is left resumable (nothing RUNNING)."""
    from sweep_helpers import states

    results = tmp_path / "results"
    path = write_config(tmp_path / "sweep.yaml", make_tiny_sweep(**{"study": "piped"}))
    process = subprocess.Popen([*TRADETUNE, "launch", str(path)], cwd=REPO, env=cli_env(results),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = [process.stdout.readline() for _ in range(2)]  # Ray's log folder may come first
    assert any(line.startswith("launched study 'piped'") for line in first), first
    process.stdout.close()
    err = process.stderr.read()
    process.wait(timeout=300)
    assert "Traceback" not in err and "Error" not in err, err
    assert process.returncode == 141
    counts = states(f"sqlite:///{results / 'tradetune.db'}", "piped")
    assert not counts.get("RUNNING") and not counts.get("WAITING"), counts


def test_data_says_an_adjusted_close_column_is_not_used(tmp_path):
    """Yahoo's files carry 'Adj Close' beside 'Close': the env trades 'close', and says so."""
    frame = _bars(1000)
    frame["Adj Close"] = frame["close"] * 0.97
    frame.to_csv(tmp_path / "yahoo.csv", index=False)
    done = _run(["data", str(tmp_path / "yahoo.csv")], tmp_path / "results")
    assert done.returncode == 0, done.stderr
    assert "note:     column 'Adj Close' is not used: the env trades the 'close' column" \
        in done.stdout
