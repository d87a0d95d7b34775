"""The bad-input catalogue: one table, each row a real ``tradetune`` process given bad input.

Every row must end with exit code 1 (2 for command-line usage errors), exactly one line on
stderr that names the problem (usage errors: argparse's usage lines, then that line), no
traceback, and nothing created or changed: not the results directory, not the study database,
not the PostgreSQL server's studies.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import make_tiny_sweep
from pg_private import private_pg  # noqa: F401 - fixture
from sweep_helpers import REPO, TRADETUNE, cli_env, write_config

STUDY = "seeded"
COMMANDS = ("launch", "resume", "best", "status", "export", "evaluate", "report", "data",
            "promote")
BAD_CSV = {  # name -> (file contents or None for a directory, what the error line must say)
    "missing.csv": (None, "missing.csv: no such file"),
    "malformed.csv": ("date,open,high,low,close,volume\n2020-01-01 00:00,1,2,0.5,1.5,10,99\n",
                      "malformed.csv: some rows have more fields than the header"),
    "empty.csv": ("", "empty.csv: is empty"),
    "header_only.csv": ("date,open,high,low,close,volume\n",
                        "header_only.csv: has a header but no data rows"),
    "binary.csv": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 8, "binary.csv: is a binary file"),
    "a_directory.csv": ("DIR", "a_directory.csv: is a directory, not a CSV file"),
    "no_close.csv": ("no_close", "no_close.csv: no 'close' column"),
    "nan_gap.csv": ("nan_gap", "nan_gap.csv: 1 missing value(s) in column 'close'"),
    "duplicate_times.csv": ("duplicate", "duplicate_times.csv: duplicate timestamp"),
    "non_positive.csv": ("non_positive", "non_positive.csv: non-positive close"),
    "too_few_rows.csv": ("too_few", "at least 64 are needed"),
    "high_below_low.csv": ("high_low", "high_below_low.csv: high 49.5"),
    "case_twins.csv": ("case_twins", "columns 'close' and 'Close' differ only in case"),
    "hourly_then_daily.csv": ("interval_change", "the bar interval changes: most bars are 1h"),
}


def _bars(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    return pd.DataFrame({"date": pd.date_range("2021-01-01", periods=n, freq="1h"),
                         "open": close, "high": close * 1.01, "low": close * 0.99,
                         "close": close, "volume": rng.uniform(1, 10, n)})


def _write_csv(path: Path, kind: str | bytes | None) -> None:
    if kind is None:
        return
    if kind == "DIR":
        path.mkdir()
        return
    if isinstance(kind, bytes):
        path.write_bytes(kind)
        return
    frame = _bars(3000)
    if kind == "no_close":
        frame = frame.drop(columns="close")
    elif kind == "nan_gap":
        frame.loc[1500, "close"] = np.nan
    elif kind == "duplicate":
        frame.loc[1500, "date"] = frame.loc[1499, "date"]
    elif kind == "non_positive":
        frame.loc[1500, "close"] = 0.0
    elif kind == "too_few":
        frame = frame.head(120)
    elif kind == "high_low":
        frame.loc[1500, ["high", "low"]] = [49.5, 50.0]
    elif kind == "case_twins":
        frame["Close"] = frame["close"]
    elif kind == "interval_change":
        frame.loc[2000:, "date"] = pd.date_range(frame.loc[1999, "date"] + pd.Timedelta("1D"),
                                                 periods=1000, freq="1D")
    else:
        path.write_text(kind)
        return
    frame.to_csv(path, index=False)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Bad data files, configs that launch them, and a study with a FAIL trial only."""
    import optuna

    from search.study.storage import open_storage
    from search.study.studies import create_study, data_fingerprint
    from spaces import get_space

    root = tmp_path_factory.mktemp("bad-input")
    data = root / "data"
    data.mkdir()
    _bars(3000).to_csv(data / "good.csv", index=False)
    for name, (kind, _) in BAD_CSV.items():
        _write_csv(data / name, kind)
        config = make_tiny_sweep(**{"study": "from-data"})
        config["data"] = {"path": str(data / name), "synthetic": None, "splits": None,
                          "features": None}
        write_config(root / f"launch-{name}.yaml", config)
    template = root / "template"
    template.mkdir()
    config = make_tiny_sweep(**{"study": STUDY})
    space = get_space("ppo", config["search"]["space_overrides"])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = create_study(open_storage(f"sqlite:///{template / 'tradetune.db'}"), config, space,
                         data_fingerprint(config["data"]), "test")
    for _ in range(2):  # trials 0 and 1: diverged, no checkpoint
        trial = study.ask()
        space(trial)
        trial.set_user_attr("fail_reason", "training diverged: default_policy/total_loss = nan")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    good = make_tiny_sweep(**{"study": "fresh"})
    write_config(root / "good.yaml", good)
    return {"root": root, "data": data, "template": template}


def _config(root: Path, name: str, text: str) -> str:
    """A config file named ``name`` holding a study name and ``text``."""
    path = root / name
    path.write_text(text if text.startswith(("study", "-")) else f"study: bad\n{text}")
    return str(path)


def _fifo(root: Path) -> str:
    """A named pipe as config: opening it for reading would wait for a writer forever."""
    path = root / "fifo.yaml"
    if not path.exists():
        os.mkfifo(path)
    return str(path)


# A few hundred bytes that expand to 10**9 list entries once the aliases are followed.
ALIAS_BOMB = "".join(f"l{n}: &l{n} [" + ", ".join([f"*l{n - 1}" if n else "x"] * 10) + "]\n"
                     for n in range(9))

# id -> (argv builder, exit code, text the one error line must contain)
ROWS: dict[str, tuple] = {
    # -- config files ----------------------------------------------------------------------------
    "config-unknown-key": (lambda i: ["launch", _config(i["root"], "c1.yaml", "trainig: {}\n")],
                           1, "unknown config key 'trainig'; did you mean 'training'?"),
    "config-unknown-nested-key": (
        lambda i: ["launch", _config(i["root"], "c2.yaml", "training: {max_iteration: 3}\n")],
        1, "unknown config key 'training.max_iteration'; did you mean 'training.max_iterations'?"),
    "config-wrong-type": (
        lambda i: ["launch", _config(i["root"], "c3.yaml", "training: {max_iterations: ten}\n")],
        1, "training.max_iterations must be a whole number, got 'ten'"),
    "config-section-not-mapping": (
        lambda i: ["launch", _config(i["root"], "c4.yaml", "training: 5\n")],
        1, "config key 'training' must be a mapping, got 5"),
    "config-low-above-high": (
        lambda i: ["launch", _config(i["root"], "c5.yaml",
                                     "search: {space_overrides: {lr: {low: 0.1, high: 0.001}}}\n")],
        1, "parameter 'lr': low (0.1) is greater than high (0.001)"),
    "config-log-range-with-zero": (
        lambda i: ["launch", _config(i["root"], "c6.yaml",
                                     "search: {space_overrides: {lr: {low: 0, high: 0.001}}}\n")],
        1, "parameter 'lr': a log range must be positive, got low=0"),
    "config-unknown-space-parameter": (
        lambda i: ["launch", _config(i["root"], "c7.yaml",
                                     "search: {space_overrides: {gama: 0.99}}\n")],
        1, "unknown search parameter 'gama'; did you mean 'gamma'?"),
    "config-unknown-algorithm": (
        lambda i: ["launch", _config(i["root"], "c8.yaml", "algorithm: a2c\n")],
        1, "unknown algorithm 'a2c'"),
    "config-zero-trials": (
        lambda i: ["launch", _config(i["root"], "c9.yaml", "search: {num_samples: 0}\n")],
        1, "search.num_samples must be >= 1, got 0"),
    "config-negative-iterations": (
        lambda i: ["launch", _config(i["root"], "c10.yaml", "training: {max_iterations: -5}\n")],
        1, "training.max_iterations must be >= 1, got -5"),
    "config-eval-every-above-max-iterations": (
        lambda i: ["launch", _config(i["root"], "c11.yaml",
                                     "training: {max_iterations: 4, eval_every: 5}\n")],
        1, "training.eval_every (5) is larger than training.max_iterations (4)"),
    "config-invalid-yaml": (
        lambda i: ["launch", _config(i["root"], "c12.yaml", "study: [unclosed\ntraining: {\n")],
        1, "is not valid YAML at line"),
    "config-not-a-mapping": (
        lambda i: ["launch", _config(i["root"], "c13.yaml", "- ppo\n- dqn\n")],
        1, "must hold a mapping of keys, got list"),
    "config-file-missing": (lambda i: ["launch", str(i["root"] / "nope.yaml")],
                            1, "nope.yaml does not exist"),
    "config-file-is-directory": (lambda i: ["launch", str(i["root"])], 1, "is a directory"),
    "config-set-without-value": (
        lambda i: ["launch", str(i["root"] / "good.yaml"), "--set", "training.max_iterations"],
        1, "--set 'training.max_iterations' must look like KEY=VALUE"),
    "config-num-samples-zero": (
        lambda i: ["launch", str(i["root"] / "good.yaml"), "--num-samples", "0"],
        1, "search.num_samples must be >= 1, got 0"),
    "config-nan-number": (
        lambda i: ["launch", _config(i["root"], "c15.yaml", "env: {commission: .nan}\n")],
        1, "env.commission must be a finite number, got nan"),
    "config-unknown-action-set": (
        lambda i: ["launch", _config(i["root"], "c15a.yaml", "env: {actions: long_shrot}\n")],
        1, "unknown env.actions 'long_shrot'; did you mean 'long_short'?"),
    "config-sizes-without-cash": (
        lambda i: ["launch", str(i["root"] / "good.yaml"), "--set",
                   "env.actions={sizes: [-1, 1]}"],
        1, "env.actions sizes [-1.0, 1.0] must include 0"),
    "config-searched-friction": (
        lambda i: ["launch", str(i["root"] / "good.yaml"), "--set",
                   "search.space_overrides.borrow_rate={low: 0, high: 0.1}"],
        1, "'borrow_rate' cannot be searched: it is a market friction or product choice"),
    "config-inf-number-set": (
        lambda i: ["launch", str(i["root"] / "good.yaml"), "--set",
                   "resources.gpus_per_trial=.inf"],
        1, "resources.gpus_per_trial must be a finite number, got inf"),
    "config-nan-space-bound": (
        lambda i: ["launch", _config(i["root"], "c16.yaml",
                                     "search: {space_overrides: {lr: {low: .nan, high: 1e-3}}}\n")],
        1, "search.space_overrides.lr.low must be a finite number, got nan"),
    "config-bool-as-number": (
        lambda i: ["launch", _config(i["root"], "c17.yaml", "search: {num_samples: true}\n")],
        1, "search.num_samples must be a whole number, got True"),
    "config-bool-range-bound": (
        lambda i: ["launch", str(i["root"] / "good.yaml"), "--set",
                   "search.space_overrides.lr.low=true"],
        1, "parameter 'lr': override values must be numbers, got low=True"),
    "config-set-through-a-value": (
        lambda i: ["launch", _config(i["root"], "c18.yaml",
                                     "search: {space_overrides: {gamma: 0.99}}\n"),
                   "--set", "search.space_overrides.gamma.low=0.9"],
        1, "search.space_overrides.gamma is 0.99, not a mapping"),
    "config-alias-bomb": (lambda i: ["launch", _config(i["root"], "c19.yaml", ALIAS_BOMB)],
                          1, "YAML anchors and aliases (&name, *name) are not supported"),
    "config-fifo": (lambda i: ["launch", _fifo(i["root"])], 1,
                    "fifo.yaml is not a regular file (a pipe, socket or device)"),
    "config-too-large": (
        lambda i: ["launch", _config(i["root"], "c20.yaml", "# padding\n" * 200_000)],
        1, "c20.yaml is larger than 1024 KB"),
    # -- study names -----------------------------------------------------------------------------
    "study-empty": (lambda i: ["launch", str(i["root"] / "good.yaml"), "--study", ""],
                    1, "study name is empty"),
    "study-whitespace": (lambda i: ["launch", str(i["root"] / "good.yaml"), "--study", "   "],
                         1, "study name is empty"),
    "study-not-text": (lambda i: ["launch", _config(i["root"], "c14.yaml", "study: [a, b]\n")],
                       1, "study name must be text, got ['a', 'b']"),
    "study-too-long": (lambda i: ["launch", str(i["root"] / "good.yaml"), "--study", "s" * 101],
                       1, "invalid study name 'sss"),
    "study-path-separator": (lambda i: ["launch", str(i["root"] / "good.yaml"), "--study",
                                       "../escape"], 1, "invalid study name '../escape'"),
    "study-path-separator-in-query": (lambda i: ["best", "--study", "a/b"],
                                      1, "invalid study name 'a/b'"),
    "study-missing-suggests": (lambda i: ["best", "--study", "seedd"],
                               1, "no study named 'seedd' in sqlite:"),
    "study-resume-missing": (lambda i: ["resume", "--study", "nothing-here"],
                             1, "no study named 'nothing-here'"),
    # -- storage URLs ----------------------------------------------------------------------------
    "storage-unsupported-scheme": (
        lambda i: ["launch", str(i["root"] / "good.yaml"), "--storage", "redis://localhost:6379"],
        1, "unsupported storage URL 'redis://localhost:6379'"),
    "storage-unsupported-scheme-query": (
        lambda i: ["status", "--storage", "mongodb://u:hunter2@h/db"],
        1, "unsupported storage URL 'mongodb://u:***@h/db'"),
    "storage-unreachable-host": (
        lambda i: ["launch", str(i["root"] / "good.yaml"), "--storage",
                   "postgresql://tradetune:hunter2@127.0.0.1:1/studies"],
        1, "cannot open storage postgresql://tradetune:***@127.0.0.1:1/studies: connection"),
    "storage-wrong-password": (
        lambda i: ["launch", str(i["root"] / "good.yaml"), "--storage", i["pg"].url("wrong-pw")],
        1, 'password authentication failed for user "tradetune"'),
    "storage-wrong-password-query": (
        lambda i: ["status", "--storage", i["pg"].url("wrong-pw")],
        1, 'password authentication failed for user "tradetune"'),
    "storage-sqlite-missing-directory": (
        lambda i: ["launch", str(i["root"] / "good.yaml"), "--storage",
                   f"sqlite:///{i['root'] / 'no-such-dir' / 'x.db'}"],
        1, "SQLite storage directory"),
    "storage-unset-variable": (
        lambda i: ["status", "--storage", "postgresql://tradetune:${TT_NOT_SET}@127.0.0.1/x"],
        1, "storage URL refers to ${TT_NOT_SET} but that environment variable is not set"),
    "storage-empty-database": (
        lambda i: ["status", "--storage", f"sqlite:///{i['root'] / 'empty.db'}"],
        1, "holds no studies yet"),
    "storage-in-memory-launch": (
        lambda i: ["launch", str(i["root"] / "good.yaml"), "--storage", "sqlite://"],
        1, "in-memory storage 'sqlite://' keeps nothing"),
    "storage-in-memory-resume": (
        lambda i: ["resume", "--study", STUDY, "--storage", "sqlite:///:memory:"],
        1, "in-memory storage 'sqlite:///:memory:' keeps nothing"),
    "storage-in-memory-query": (lambda i: ["best", "--study", STUDY, "--storage", "sqlite://"],
                                1, "in-memory storage 'sqlite://' keeps nothing"),
    "storage-mysql": (
        lambda i: ["status", "--storage", "mysql://u:hunter2@127.0.0.1/db"],
        1, "unsupported storage URL 'mysql://u:***@127.0.0.1/db' (no MySQL driver is installed "
           "with TradeTune): use sqlite:///PATH or postgresql://"),
    "storage-uninstalled-postgres-driver": (
        lambda i: ["launch", str(i["root"] / "good.yaml"), "--storage",
                   "postgresql+psycopg2://postgres@127.0.0.1:5432/test"],
        1, "(TradeTune connects to PostgreSQL through psycopg 3 only)"),
    "storage-sqlite-is-a-directory": (
        lambda i: ["best", "--study", STUDY, "--storage", f"sqlite:///{i['root']}"],
        1, "is a directory; give a database file"),
    "storage-no-database-file": (
        lambda i: ["best", "--study", STUDY, "--storage", f"sqlite:///{i['root'] / 'none.db'}"],
        1, "no study database at"),
    # -- command-line misuse ---------------------------------------------------------------------
    "cli-missing-required-option": (lambda i: ["best"], 2,
                                    "the following arguments are required: --study"),
    "cli-unknown-subcommand": (lambda i: ["lanch"], 2,
                               "unknown command 'lanch'; did you mean 'launch'?"),
    "cli-no-subcommand": (lambda i: [], 2, "the following arguments are required: COMMAND"),
    "cli-top-zero": (lambda i: ["best", "--study", STUDY, "--top", "0"], 2,
                     "--top must be at least 1, got 0"),
    "cli-top-not-a-number": (lambda i: ["best", "--study", STUDY, "--top", "many"], 2,
                             "argument --top: invalid int value: 'many'"),
    "cli-top-with-split": (lambda i: ["evaluate", "--study", STUDY, "--top", "2", "--split",
                                      "val"], 2, "--top compares validation and test side by "
                                                 "side (a look at the test split), so it takes "
                                                 "no --split"),
    "cli-bad-split": (lambda i: ["evaluate", "--study", STUDY, "--split", "train"], 2,
                      "argument --split: invalid choice: 'train'"),
    "cli-trial-does-not-exist": (lambda i: ["evaluate", "--study", STUDY, "--trial", "99"], 1,
                                 "study 'seeded' has no trial 99 (it has 2 trials)"),
    "cli-trial-negative": (lambda i: ["export", "--study", STUDY, "--trial", "-1", "--out",
                                      str(i["root"] / "out-neg")], 1,
                           "--trial must be a trial number >= 0, got -1"),
    "cli-evaluate-failed-trial": (lambda i: ["evaluate", "--study", STUDY, "--trial", "1"], 1,
                                  "trial 1 is FAIL (training diverged: default_policy/total_loss "
                                  "= nan); pick a COMPLETE trial"),
    "cli-export-failed-trial": (lambda i: ["export", "--study", STUDY, "--trial", "0", "--out",
                                           str(i["root"] / "out-fail")], 1,
                                "trial 0 is FAIL"),
    "cli-evaluate-without-complete-trial": (lambda i: ["evaluate", "--study", STUDY], 1,
                                            "study 'seeded' has no COMPLETE trial yet"),
    "cli-promote-seeds-zero": (lambda i: ["promote", "--study", STUDY, "--seeds", "0"], 1,
                               "--seeds must be between 1 and 100, got 0"),
    "cli-promote-missing-seeds": (lambda i: ["promote", "--study", STUDY], 2,
                                  "the following arguments are required: --seeds"),
    "cli-promote-failed-trial": (
        lambda i: ["promote", "--study", STUDY, "--trial", "1", "--seeds", "2"], 1,
        "trial 1 of study 'seeded' is FAIL, not COMPLETE; promote a completed trial"),
    "cli-promote-without-complete-trial": (lambda i: ["promote", "--study", STUDY, "--seeds", "2"],
                                           1, "study 'seeded' has no COMPLETE trial yet"),
    "cli-launch-existing-study": (
        lambda i: ["launch", str(i["root"] / "good.yaml"), "--study", STUDY], 1,
        "study 'seeded' already exists"),
    "cli-data-bad-splits": (
        lambda i: ["data", str(i["data"] / "good.csv"), "--splits",
                   "{train: 0.9, val: 0.2, test: 0.1}"], 1,
        "data.splits fractions must sum to 1, got 1.2"),
    "cli-data-splits-alias": (
        lambda i: ["data", str(i["data"] / "good.csv"), "--splits", "{train: &f 0.5, val: *f}"],
        1, "--splits: YAML anchors and aliases (&name, *name) are not supported"),
}
# Every bad data file, through `tradetune data FILE` and through `launch` with data.path.
for _name, (_kind, _says) in BAD_CSV.items():
    ROWS[f"data-{_name}"] = ((lambda n: lambda i: ["data", str(i["data"] / n)])(_name), 1, _says)
    ROWS[f"launch-data-{_name}"] = (
        (lambda n: lambda i: ["launch", str(i["root"] / f"launch-{n}.yaml")])(_name), 1, _says)


def _snapshot(*paths: Path) -> dict[str, str]:
    """Every file under ``paths`` with a hash of its bytes, and every directory."""
    seen: dict[str, str] = {}
    for top in paths:
        if not top.exists():
            continue
        for path in sorted([top, *top.rglob("*")]):
            if path.is_dir():
                seen[str(path)] = "dir"
            elif path.is_file():
                seen[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:  # a named pipe (reading it would wait forever)
                seen[str(path)] = "special"
    return seen


def _pg_studies(server) -> list[str]:
    from search.study.studies import study_names
    from search.study.storage import open_storage
    from search.errors import StorageError

    try:
        return study_names(open_storage(server.url(), read_only=True))
    except StorageError:
        return []  # no tables yet: no studies


def _prepare_row(row: str, inputs: dict, pg, base: Path) -> tuple[list[str], Path]:
    """The row's command line (writing its config file) and its own results directory."""
    results = base / row / "results"
    shutil.copytree(inputs["template"], results)
    return ROWS[row][0]({**inputs, "pg": pg}), results


def _run_row(argv: list[str], results: Path) -> dict:
    before = _snapshot(results)
    done = subprocess.run([*TRADETUNE, *argv], cwd=REPO, env=cli_env(results),
                          capture_output=True, text=True, timeout=180)
    return {"argv": argv, "done": done, "changed": _snapshot(results) != before}


@pytest.fixture(scope="module")
def outcomes(inputs, private_pg, tmp_path_factory):  # noqa: F811 - fixture argument
    """Every row, run 4 at a time (each is a fresh process: 2 s of imports for `launch`)."""
    from concurrent.futures import ThreadPoolExecutor

    (inputs["root"] / "empty.db").touch()
    base = tmp_path_factory.mktemp("rows")
    prepared = {row: _prepare_row(row, inputs, private_pg, base) for row in ROWS}
    shared = (inputs["root"], Path.home() / "tradetune_results" / "fresh")
    shared_before, pg_before = _snapshot(*shared), _pg_studies(private_pg)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {row: pool.submit(_run_row, *prepared[row]) for row in ROWS}
        ran = {row: future.result() for row, future in futures.items()}
    shared_after = _snapshot(*shared)
    changed = sorted(k for k in set(shared_before) | set(shared_after)
                     if shared_before.get(k) != shared_after.get(k))
    return {"rows": ran, "shared_changed": changed,
            "pg_changed": _pg_studies(private_pg) != pg_before, "pg": private_pg}


@pytest.mark.parametrize("row", list(ROWS))
def test_bad_input_is_one_line_and_changes_nothing(row, outcomes):
    _, code, says = ROWS[row]
    ran = outcomes["rows"][row]
    argv, done = ran["argv"], ran["done"]
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == code, done.stdout + done.stderr
    if code == 2:  # argparse: usage lines, then one error line
        assert lines, done.stderr
        assert all(line.startswith(("usage:", " ")) for line in lines[:-1]), done.stderr
    else:
        assert len(lines) == 1, done.stderr
    command = argv[0] if argv and argv[0] in COMMANDS else None
    assert lines[-1].startswith(f"tradetune {command}: error: " if command
                                else "tradetune: error: "), lines[-1]
    assert says in lines[-1], lines[-1]
    for secret in ("hunter2", outcomes["pg"].password):
        assert secret not in done.stdout + done.stderr
    assert not ran["changed"], "bad input changed the results directory or its study"
    assert not outcomes["shared_changed"], "some row changed the shared input files"
    assert not outcomes["pg_changed"], "some row changed the PostgreSQL server's studies"


def test_the_catalogue_covers_every_family():
    families = {row.split("-")[0] for row in ROWS}
    assert families >= {"config", "data", "launch", "storage", "study", "cli"}
    assert len(ROWS) >= 30
