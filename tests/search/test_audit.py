"""The sealed test split: every scoring of a study's test split is recorded in the study (when,
which trials, which command), counted by `best`, `status` and the report; and trials whose kept
checkpoint never trades on validation are labelled wherever trials are listed.

The studies are real Optuna storage with the attributes a sweep writes; their checkpoints are
real, untrained RLlib modules saved where a trial's checkpoint keeps its module, so `evaluate`
and `report` restore and trade them exactly as they would a trained one, without a sweep."""
from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import uuid
from datetime import datetime, timezone
from pathlib import Path

import optuna
import pytest

from conftest import make_tiny_sweep
from search.study.schema import TEST_LOOK_PREFIX as PREFIX
from search.study.audit import record_look
from search.cli import main
from search.study.storage import open_storage
from search.study.studies import create_study, data_fingerprint
from spaces import get_space
from sweep_helpers import REPO, TRADETUNE, cli_env, poll

PG = "postgresql://postgres@127.0.0.1:5432/test"
# (validation value, validation trades) per trial: trial 1 never trades and, scoring 0 where
# the others lose, is the best trial.
TRIALS = ((-0.5, 7), (0.0, 0), (-1.2, 3))


def save_module(config: dict, settings: dict, checkpoint: Path) -> None:
    """An untrained RLlib module of the trial's settings, saved where a trial checkpoint keeps
    it (``trainables.rllib_trainable.load_module`` reads it from there)."""
    import logging

    from trainables.env import TradingEnv
    from trainables.rllib_trainable import ALGORITHM_DIR, algorithm_config, env_config

    logging.getLogger("ray._common.deprecation").setLevel(logging.ERROR)  # RLlib's own warning

    spec = algorithm_config("ppo", settings, config, seed=0).get_rl_module_spec(
        env=TradingEnv(env_config(config, settings, "val")))
    spec.build().save_to_path(str(checkpoint / ALGORITHM_DIR / "learner_group" / "learner"
                                  / "rl_module" / "default_policy"))


def make_study(results: Path, name: str, url: str | None = None, data: Path | None = None,
               trials=TRIALS, env: dict | None = None) -> str:
    """A finished tradetune study whose trials carry what the searcher stores (value, validation
    metrics, stop reason, a checkpoint relative to the results directory); return its URL.
    ``env`` changes the sweep's env settings (action set, frictions)."""
    url = url or f"sqlite:///{results / 'tradetune.db'}"
    config = make_tiny_sweep(**{"study": name})
    config["env"].update(env or {})
    if data is not None:
        config["data"] = {"path": str(data), "synthetic": None, "splits": None,
                          "features": None}
    space = get_space("ppo", config["search"]["space_overrides"])
    results.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = create_study(open_storage(url), config, space, data_fingerprint(config["data"]),
                         "test")
    study.sampler = optuna.samplers.RandomSampler(seed=0)
    for number, (value, trades) in enumerate(trials):
        trial = study.ask()
        space(trial)
        path = f"{name}/run-1/trial_{number}/checkpoint_000000"
        save_module(config, space.replay(trial.params), results / path)
        trial.set_user_attr("checkpoint", path)
        trial.set_user_attr("metrics", {"sharpe": value, "pnl_pct": 0.0 if not trades else -1.0,
                                        "buy_and_hold_pct": 0.4, "max_drawdown": 0.05,
                                        "trades": trades})
        trial.set_user_attr("stop_reason", "patience")
        study.tell(trial, value)
    return url


def write_bars(path: Path, seed: int = 7) -> Path:
    from trainables.synthetic import synthetic_bars

    synthetic_bars(1500, seed, "1h").to_csv(path)
    return path


def looks(url: str, name: str) -> list[dict]:
    """The study's recorded looks, read straight from its storage, oldest first."""
    attrs = optuna.load_study(study_name=name, storage=url).user_attrs
    return [attrs[k] for k in sorted(attrs) if k.startswith(PREFIX)]


def out_json(capsys, args: list[str]):
    capsys.readouterr()
    assert main([*args, "-f", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def one_line_error(capsys, command: str) -> str:
    captured = capsys.readouterr()
    assert captured.out == "", "a failed look showed something"
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err, captured.err
    assert captured.err.startswith(f"tradetune {command}: error: "), captured.err
    return captured.err


@pytest.fixture
def study(tmp_path, monkeypatch) -> tuple[Path, str]:
    results = tmp_path / "results"
    url = make_study(results, "s")
    monkeypatch.setenv("TRADETUNE_RESULTS", str(results))
    monkeypatch.delenv("TRADETUNE_STORAGE", raising=False)
    return results, url


def test_each_look_at_the_test_split_is_recorded_once(study, tmp_path, capsys):
    results, url = study
    start = datetime.now(timezone.utc).replace(microsecond=0)
    assert out_json(capsys, ["status", "--study", "s"])["test_looks"] == {"count": 0,
                                                                         "last": None}

    scored = out_json(capsys, ["evaluate", "--study", "s", "--trial", "2"])
    assert scored["split"] == "test" and scored["trial"] == 2
    assert [(x["trials"], x["command"]) for x in looks(url, "s")] == [
        ([2], "evaluate --split test --trial 2")]

    # Not looks at the test split: validation, a failed look, the query commands.
    out_json(capsys, ["evaluate", "--study", "s", "--trial", "2", "--split", "val"])
    assert main(["evaluate", "--study", "s", "--trial", "9"]) == 1
    assert "has no trial 9" in one_line_error(capsys, "evaluate")
    with pytest.raises(SystemExit) as usage:
        main(["evaluate", "--study", "s", "--top", "2", "--trial", "1"])
    assert usage.value.code == 2
    for args in (["best", "--study", "s"], ["status", "--study", "s"], ["status"]):
        for fmt in ("table", "json"):
            assert main([*args, "-f", fmt]) == 0
    assert len(looks(url, "s")) == 1

    compared = out_json(capsys, ["evaluate", "--study", "s", "--top", "2"])
    assert [r["trial"] for r in compared["trials"]] == [1, 0]
    assert compared["study_test_looks"]["count"] == 2
    assert main(["evaluate", "--study", "s"]) == 0  # the best trial, table format
    assert "test split: looked at" not in capsys.readouterr().out  # `evaluate` output unchanged
    assert main(["report", "--study", "s", "--out", str(tmp_path / "report")]) == 0
    end = datetime.now(timezone.utc)

    seen = looks(url, "s")
    assert [(x["trials"], x["command"]) for x in seen] == [
        ([2], "evaluate --split test --trial 2"), ([0, 1], "evaluate --top 2"),
        ([1], "evaluate --split test"), ([0, 1, 2], "report")]
    times = [datetime.strptime(x["at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
             for x in seen]
    assert start <= times[0] and times == sorted(times) and times[-1] <= end

    # Every place that shows the count shows the same four looks and the last one.
    rows = out_json(capsys, ["best", "--study", "s", "--top", "3"])
    assert [r["study_test_looks"] for r in rows] == [{"count": 4, "last": seen[-1]}] * 3
    assert out_json(capsys, ["status", "--study", "s"])["test_looks"] == {"count": 4,
                                                                         "last": seen[-1]}
    assert [s["test_looks"]["count"] for s in out_json(capsys, ["status"])] == [4]
    line = f"looked at 4 times (last {seen[-1]['at']} by `report`, trials 0, 1, 2)"
    for args in (["best", "--study", "s"], ["status", "--study", "s"]):
        assert main(args) == 0
        assert line in capsys.readouterr().out
    page = html.unescape((tmp_path / "report" / "index.html").read_text())
    assert f"Test split: {line}." in page  # the report counts the look it made itself
    assert len(looks(url, "s")) == 4

    code = ("import sys; from search.cli import main; "
            "assert main(['best', '--study', 's']) == main(['status', '--study', 's']) == 0; "
            "assert not {'ray', 'torch', 'pandas'} & set(sys.modules), 'heavy import'")
    done = subprocess.run([TRADETUNE[0], "-c", code], cwd=REPO, env=cli_env(results),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.count(line) == 2, done.stderr[-2000:]


def test_a_look_that_fails_before_scoring_is_not_recorded(tmp_path, monkeypatch, capsys):
    data = write_bars(tmp_path / "bars.csv")
    results = tmp_path / "results"
    url = make_study(results, "d", data=data)
    capsys.readouterr()
    monkeypatch.setenv("TRADETUNE_RESULTS", str(results))
    monkeypatch.delenv("TRADETUNE_STORAGE", raising=False)
    original = data.read_bytes()
    write_bars(data, seed=8)  # the market data changed since launch
    for args in ([], ["--top", "3"]):
        assert main(["evaluate", "--study", "d", *args]) == 1
        assert "changed since study 'd' was launched" in one_line_error(capsys, "evaluate")
    assert main(["report", "--study", "d", "--out", str(tmp_path / "report")]) == 0
    page = html.unescape((tmp_path / "report" / "index.html").read_text())
    assert "Test split: not looked at yet." in page
    assert looks(url, "d") == []

    data.write_bytes(original)
    capsys.readouterr()
    shutil.rmtree(results / "d" / "run-1" / "trial_2")  # the third trial's checkpoint is gone
    assert main(["evaluate", "--study", "d", "--top", "3"]) == 1  # fails after scoring two
    assert "checkpoint of trial 2 is missing" in one_line_error(capsys, "evaluate")
    assert looks(url, "d") == []
    assert main(["evaluate", "--study", "d", "--top", "2"]) == 0
    assert [x["trials"] for x in looks(url, "d")] == [[0, 1]]


def test_a_storage_that_cannot_record_shows_no_test_score(tmp_path, monkeypatch, capsys):
    """A PostgreSQL user allowed only to read the study: the test split is not shown unrecorded
    (one line, no score, no report); the validation split still is."""
    from sqlalchemy import create_engine, text

    results = tmp_path / "results"
    name = f"audit-{uuid.uuid4().hex[:8]}"
    role = f"tt_reader_{uuid.uuid4().hex[:8]}"
    make_study(results, name, url=PG, trials=TRIALS[:1])
    monkeypatch.setenv("TRADETUNE_RESULTS", str(results))
    engine = create_engine(PG, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f"CREATE ROLE {role} LOGIN"))
        connection.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"))
    reader = f"postgresql://{role}@127.0.0.1:5432/test"
    try:
        capsys.readouterr()
        for args in (["evaluate", "--study", name, "--storage", reader],
                     ["report", "--study", name, "--storage", reader, "--out",
                      str(tmp_path / "report")]):
            assert main(args) == 1
            error = one_line_error(capsys, args[0])
            assert (f"cannot record this look at the test split of study {name!r} in its "
                    "storage (permission denied for table study_user_attributes)") in error
        assert not (tmp_path / "report").exists()
        assert out_json(capsys, ["evaluate", "--study", name, "--storage", reader, "--split",
                                 "val"])["split"] == "val"
        assert looks(PG, name) == []
    finally:
        optuna.delete_study(study_name=name, storage=PG)
        with engine.connect() as connection:
            connection.execute(text(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}"))
            connection.execute(text(f"DROP ROLE {role}"))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_processes_looking_at_once_record_two_looks(tmp_path, backend):
    """Two `evaluate` processes at once record two looks (on SQLite, the default; each process
    loads RLlib, which takes a while); and two processes each recording many looks at the same
    moment lose none, on SQLite and PostgreSQL (a shared list would lose updates here)."""
    results = tmp_path / "results"
    name = f"audit-{uuid.uuid4().hex[:8]}"
    url = make_study(results, name, url=PG if backend == "postgresql" else None,
                     trials=TRIALS[:1])
    try:
        both = [subprocess.Popen([*TRADETUNE, "evaluate", "--study", name, "--storage", url,
                                  "-f", "json"], cwd=REPO, env=cli_env(results),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(2 if backend == "sqlite" else 0)]
        for process in both:
            out, err = process.communicate(timeout=300)
            assert process.returncode == 0, err[-2000:]
            assert json.loads(out)["trial"] == 0
        assert [(x["trials"], x["command"]) for x in looks(url, name)] == [
            ([0], "evaluate --split test")] * len(both)

        go = tmp_path / "go"
        script = ("import sys, time, optuna; from pathlib import Path; "
                  "from search.study.audit import record_look; "
                  "study = optuna.load_study(study_name=sys.argv[1], storage=sys.argv[2]); "
                  "go = Path(sys.argv[3]); Path(f'{go}-ready{sys.argv[4]}').touch()\n"
                  "while not go.exists(): time.sleep(0.01)\n"
                  "for i in range(25): record_look(study, [0], f'burst {sys.argv[4]}')")
        burst = [subprocess.Popen([TRADETUNE[0], "-c", script, name, url, str(go), str(i)],
                                  cwd=REPO, env=cli_env(results), stderr=subprocess.PIPE,
                                  text=True) for i in range(2)]
        poll(lambda: all(Path(f"{go}-ready{i}").exists() for i in range(2)), 120,
             "both processes to be ready")
        go.touch()
        for process in burst:
            assert process.wait(timeout=120) == 0, process.stderr.read()[-2000:]
        commands = [x["command"] for x in looks(url, name)]
        assert len(commands) == len(both) + 50
        assert commands.count("burst 0") == commands.count("burst 1") == 25
    finally:
        if backend == "postgresql":
            optuna.delete_study(study_name=name, storage=url)


def test_never_trading_trials_are_labelled(study, tmp_path, capsys):
    results, url = study
    rows = out_json(capsys, ["best", "--study", "s", "--top", "3"])
    assert [(r["number"], r["value"], r["never_trades"]) for r in rows] == [
        (1, 0.0, True), (0, -0.5, False), (2, -1.2, False)]
    assert main(["best", "--study", "s", "--top", "3"]) == 0
    table = capsys.readouterr().out
    marker = "[NEVER TRADES on validation (stays in cash)]"
    assert table.count(marker) == 1
    assert re.search(r"^trial 1: value 0 \[NEVER TRADES on validation \(stays in cash\)\]  "
                     r"\(val sharpe 0,", table, re.M), table
    assert "trial 0: value -0.5  (val sharpe" in table

    status = out_json(capsys, ["status", "--study", "s"])
    assert (status["best_trial"], status["best_never_trades"]) == (1, True)
    assert main(["status", "--study", "s"]) == 0
    assert "best value 0 (trial 1, NEVER TRADES on validation (stays in cash))" in \
        capsys.readouterr().out

    compared = out_json(capsys, ["evaluate", "--study", "s", "--top", "3"])
    assert [(r["trial"], r["never_trades"]) for r in compared["trials"]] == [
        (1, True), (0, False), (2, False)]
    assert main(["evaluate", "--study", "s", "--top", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[0] == "1" and lines[1].endswith("NEVER TRADES on validation "
                                                            "(stays in cash)")
    assert "NEVER TRADES" not in lines[2] + lines[3]

    assert main(["report", "--study", "s", "--out", str(tmp_path / "report")]) == 0
    page = html.unescape((tmp_path / "report" / "index.html").read_text())
    tables = re.findall(r"<table>(.*?)</table>", page, re.S)
    for table_html in tables[:1] + tables[-1:]:  # the top trials, the overfitting check
        body = [row for row in table_html.split("<tr>")[2:]]
        marked = [row for row in body if "never trades (cash)" in row]
        assert len(body) == 3 and len(marked) == 1, table_html
        assert re.match(r"(<td>1</td>)?<td>1</td><td>0</td>", marked[0]), marked[0]


def test_best_and_the_report_show_the_action_set_and_frictions_the_study_trades_with(study,
                                                                                     capsys):
    results, _ = study
    rows = out_json(capsys, ["best", "--study", "s", "--top", "2"])
    assert rows[0]["market"] == rows[1]["market"] == {
        "commission": 0.001, "initial_cash": 10_000.0, "reward": "log_return",
        "actions": "long_only", "levels": [0.0, 1.0], "borrow_rate": 0.05,
        "slippage": {"bps": 0.0, "vol_mult": 0.0, "vol_window": 24}}
    assert main(["best", "--study", "s", "--top", "2"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[-1] == ("market: actions long_only (cash, long 100%), commission "
                                      "0.1%, slippage none")
    make_study(results, "ls", env={"actions": "long_short", "borrow_rate": 0.08,
                                   "slippage": {"bps": 2.5}})
    rows = out_json(capsys, ["best", "--study", "ls"])
    assert rows[0]["market"]["levels"] == [-1.0, 0.0, 1.0]
    assert rows[0]["market"]["slippage"] == {"bps": 2.5, "vol_mult": 0.0, "vol_window": 24}
    assert main(["best", "--study", "ls"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "market: actions long_short (short 100%, cash, long 100%), commission 0.1%, slippage "
        "2.5 bps, borrow 8%/year")
    assert main(["report", "--study", "ls", "--out", str(results / "report")]) == 0
    page = html.unescape((results / "report" / "index.html").read_text())
    assert ("Market (fixed for the study): actions long_short (short 100%, cash, long 100%), "
            "commission 0.1%, slippage 2.5 bps, borrow 8%/year") in page
