"""`tradetune report` on real Optuna studies (SQLite and PostgreSQL), and optuna-dashboard
reading the same storage through its own server code."""
from __future__ import annotations

import hashlib
import io
import json
import re
import uuid
from pathlib import Path

import numpy as np
import optuna
import pytest

from search.cli import main
from search.results.report import write_report
from search.study.storage import open_storage
from search.study.studies import create_study, data_fingerprint
from spaces import get_space

PG = "postgresql://postgres@127.0.0.1:5432/test"
# One action set of each kind: today's, the named long-short one and a list of sizes.
ACTION_SETS = {"long_only": "long_only", "long_short": "long_short",
               "sizes": {"sizes": [-1, -0.5, 0, 0.5, 1]}}


def make_study(url: str, tiny_sweep, name: str, values: list, running: int = 0,
               changes: dict | None = None):
    """A tradetune study with one trial per entry of ``values``: a number makes a COMPLETE
    trial (with three reported evaluations and validation metrics), ``"fail"`` a FAIL trial;
    then ``running`` RUNNING trials with one evaluation each. ``changes``: more ``--set``
    style changes of the sweep config."""
    config = tiny_sweep(**{"study": name, **(changes or {})})
    space = get_space("ppo", config["search"]["space_overrides"])
    study = create_study(open_storage(url), config, space, data_fingerprint(config["data"]))
    study.sampler = optuna.samplers.RandomSampler(seed=0)
    for value in values:
        trial = study.ask()
        space(trial)
        if value == "fail":
            trial.set_user_attr("fail_reason", "TrainingDiverged: total_loss = nan")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        for step, fraction in enumerate((0.5, 0.9, 1.0), 1):
            trial.report(value * fraction, step)
        trial.set_user_attr("metrics", {"sharpe": value, "pnl_pct": 2.5, "buy_and_hold_pct": 1.0,
                                        "max_drawdown": 0.08, "trades": 7})
        trial.set_user_attr("stop_reason", "patience")
        study.tell(trial, value)
    for _ in range(running):
        trial = study.ask()
        space(trial)
        trial.report(0.1, 1)
    return study


def images(out: Path) -> list[str]:
    return sorted(p.name for p in out.glob("*.png"))


def check_report(out: Path) -> str:
    """Every PNG decodes and is not blank; the page references exactly the PNGs written."""
    from PIL import Image

    page = (out / "index.html").read_text(encoding="utf-8")
    for name in images(out):
        with Image.open(out / name) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=float)
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100, name
        assert pixels.var() > 0, f"{name} is blank"
    assert sorted(re.findall(r'<img src="([^"]+)"', page)) == images(out)
    assert "http://" not in page and "https://" not in page and "<script" not in page
    return page


def best_line(study) -> str:
    best = study.best_trial
    return f"Best trial: <b>#{best.number}</b>, value <b>{best.value:.4g}</b>"


def test_finished_study_report(tmp_path, tiny_sweep):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = make_study(url, tiny_sweep, "done", [0.3, 1.7, -0.4, "fail", 0.9, 1.2])
    before = hashlib.sha256((tmp_path / "studies.db").read_bytes()).hexdigest()

    index = write_report(url, "done", tmp_path / "report")

    assert index == tmp_path / "report" / "index.html"
    assert images(index.parent) == ["evaluations.png", "history.png", "importances.png",
                                    "slices.png"]
    page = check_report(index.parent)
    assert best_line(study) in page and study.best_trial.number == 1
    table = page[page.index("<table>"):page.index("</table>")]
    assert table.count("<tr>") == 1 + 5  # header + the COMPLETE trials, best first
    assert re.findall(r"<tr><td>1</td><td>1</td><td>1.7</td>", table)
    assert "TrainingDiverged: total_loss = nan" in page  # failed trials say why
    assert "cannot trade the best trial: trial 1 has no checkpoint recorded" in page
    after = hashlib.sha256((tmp_path / "studies.db").read_bytes()).hexdigest()
    assert after == before, "the report wrote to the study storage"


@pytest.mark.parametrize(("name", "changes", "terms"), [
    ("long_only", {}, "actions long_only (cash, long 100%), commission 0.1%, slippage none"),
    ("long_short", {"env.borrow_rate": 0.1},
     "actions long_short (short 100%, cash, long 100%), commission 0.1%, slippage none, "
     "borrow 10%/year"),
    ("sizes", {"env.slippage": "{bps: 5, vol_mult: 0.1}", "env.commission": 0.002},
     "actions sizes[-1,-0.5,0,0.5,1] (short 100%, short 50%, cash, long 50%, long 100%), "
     "commission 0.2%, slippage 5 bps + 0.1 x 24-bar volatility, borrow 5%/year")])
def test_report_shows_the_action_set_and_frictions(tmp_path, tiny_sweep, name, changes, terms):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    make_study(url, tiny_sweep, name, [0.5],
               changes={"env.actions": json.dumps(ACTION_SETS[name]), **changes})
    page = check_report(write_report(url, name, tmp_path / "report").parent)
    assert f'<p class="market">Market (fixed for the study): {terms}</p>' in page


def _equity_legend(evaluation) -> list[str]:
    """The legend of the equity chart's top panel for one evaluation."""
    import matplotlib.pyplot as plt

    from search.results import report_plots as plots

    closes = evaluation.closes
    figure, (top, bottom) = plt.subplots(2)
    try:
        plots._equity_panel(top, bottom, {"label": "test", "evaluation": evaluation,
                                          "closes": closes})
        return [text.get_text() for text in top.get_legend().get_texts()]
    finally:
        plt.close(figure)


def test_trade_marks_find_buys_sells_and_short_periods():
    from search.results.report_plots import trade_marks

    buys, sells, shorts = trade_marks([0, 1, 1, 0, 0, 1])  # long-only: entries and exits
    assert (list(buys), list(sells), shorts) == ([1, 5], [3], [])
    buys, sells, shorts = trade_marks([0, -1, -1, 0, 0.5, 1, -0.5, -0.5, 0, -1])
    assert list(buys) == [3, 4, 5, 8] and list(sells) == [1, 6, 9]
    assert shorts == [(1, 2), (6, 7), (9, 9)]


@pytest.mark.parametrize("name", sorted(ACTION_SETS))
def test_equity_chart_marks_trades_and_shades_shorts_for_every_action_set(name, tmp_path):
    from search.results import report_plots as plots
    from search.results.report_plots import trade_marks
    from trainables.evaluation import evaluate, level_index

    config = {"data": {"synthetic": {"n_bars": 1500, "seed": 7}}, "window_size": 5,
              "actions": ACTION_SETS[name]}

    def flip(obs):  # one level up after an up bar, one down after a down bar
        from trainables.actions import action_levels

        levels = action_levels(ACTION_SETS[name])
        held = np.array([level_index(levels, p) for p in obs[:, -1]])
        step = np.where(obs[:, -1 - (obs.shape[1] - 1) // 5] > 0, 1, -1)
        return np.clip(held + step, 0, len(levels) - 1)

    result = evaluate(flip, config, "val")
    buys, sells, shorts = trade_marks(result.positions)
    assert len(buys) + len(sells) == result.trades > 10
    legend = _equity_legend(result)
    assert legend[:4] == ["agent", "buy-and-hold", f"buy ({len(buys)})", f"sell ({len(sells)})"]
    if name == "long_only":
        assert len(legend) == 4 and shorts == []
    else:
        short_bars = int((result.positions < 0).sum())
        assert short_bars == sum(last - first + 1 for first, last in shorts) > 0
        assert legend[4:] == [f"short ({short_bars} bars)"]
    path = plots.equity([{"label": "validation", "evaluation": result,
                          "closes": result.closes}], tmp_path / "equity.png", "equity")
    assert path.stat().st_size > 10_000


def test_rerun_replaces_images_of_an_earlier_report(tmp_path, tiny_sweep):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    make_study(url, tiny_sweep, "rich", [0.3, 1.7, 0.9])
    make_study(url, tiny_sweep, "poor", ["fail"])
    write_report(url, "rich", tmp_path / "report")
    write_report(url, "poor", tmp_path / "report")
    assert images(tmp_path / "report") == []
    check_report(tmp_path / "report")


def test_running_study_is_a_snapshot(tmp_path, tiny_sweep):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = make_study(url, tiny_sweep, "live", [0.5, 0.8], running=2)
    page = check_report(write_report(url, "live", tmp_path / "report").parent)
    assert "COMPLETE 2, RUNNING 2" in page
    assert "The study is running: this is a snapshot" in page
    assert f"optuna-dashboard {url}" in page
    assert best_line(study) in page
    assert "evaluations.png" in images(tmp_path / "report")


def test_one_trial_study(tmp_path, tiny_sweep):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = make_study(url, tiny_sweep, "single", [1.25])
    page = check_report(write_report(url, "single", tmp_path / "report").parent)
    assert images(tmp_path / "report") == ["evaluations.png", "history.png"]
    assert best_line(study) in page
    assert "needs at least 2 completed trials whose parameters differ (the study has 1 " \
           "completed)" in page


@pytest.mark.parametrize("values, running, counts", [
    (["fail", "fail"], 0, "FAIL 2"),
    ([], 1, "RUNNING 1"),
    ([], 0, "no trials yet"),
], ids=["failed-only", "running-only", "empty"])
def test_study_without_completed_trials(tmp_path, tiny_sweep, values, running, counts):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    make_study(url, tiny_sweep, "nothing", values, running=running)
    page = check_report(write_report(url, "nothing", tmp_path / "report").parent)
    assert "No COMPLETE trial yet: there is no best trial." in page
    assert "this plot appears once a trial completes" in page
    assert f"<p>{counts}</p>" in page
    assert images(tmp_path / "report") == (["evaluations.png"] if running else [])
    assert ("TrainingDiverged" in page) == bool(values)


def test_postgres_report(tmp_path, tiny_sweep):
    name = f"report-{uuid.uuid4().hex[:8]}"
    study = make_study(PG, tiny_sweep, name, [0.2, "fail", 0.6, 0.4], running=1)
    try:
        page = check_report(write_report(PG, name, tmp_path / "report").parent)
        assert best_line(study) in page
        assert images(tmp_path / "report") == ["evaluations.png", "history.png",
                                               "importances.png", "slices.png"]
    finally:
        optuna.delete_study(study_name=name, storage=PG)


def test_cli_errors_are_one_line(tmp_path, tiny_sweep, capsys):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    make_study(url, tiny_sweep, "there", [0.5])
    (tmp_path / "afile").write_text("")
    cases = [
        (["--study", "ther", "--storage", url, "--out", str(tmp_path / "r")],
         f"no study named 'ther' in {url}; did you mean 'there'?"),
        (["--study", "there", "--storage", f"sqlite:///{tmp_path / 'none.db'}", "--out",
          str(tmp_path / "r")], f"no study database at {tmp_path / 'none.db'}"),
        (["--study", "there", "--storage", url, "--out", str(tmp_path / "afile")],
         f"--out {tmp_path / 'afile'} is a file"),
    ]
    for args, message in cases:
        assert main(["report", *args]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"tradetune report: error: {message}"), err
        assert err.count("\n") == 1
    assert not (tmp_path / "none.db").exists() and not (tmp_path / "r").exists()
    assert main(["report", "--study", "there", "--storage", url, "--out",
                 str(tmp_path / "r")]) == 0
    assert capsys.readouterr().out == f"report of there written to {tmp_path / 'r'}/index.html\n"


def wsgi_get(app, path: str) -> dict:
    """One GET through a WSGI app, in-process."""
    from wsgiref.util import setup_testing_defaults

    environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "QUERY_STRING": "",
               "wsgi.input": io.BytesIO()}
    setup_testing_defaults(environ)
    status = []
    body = b"".join(app(environ, lambda code, headers, exc_info=None: status.append(code)))
    assert status[0].startswith("200"), (status, body[:300])
    return json.loads(body)


def test_optuna_dashboard_reads_the_study(tmp_path, tiny_sweep):
    from optuna_dashboard import wsgi

    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = make_study(url, tiny_sweep, "watched", [0.4, "fail", 1.1], running=1)
    app = wsgi(open_storage(url, read_only=True))

    listing = wsgi_get(app, "/api/studies")["study_summaries"]
    assert [s["study_name"] for s in listing] == ["watched"]
    detail = wsgi_get(app, f"/api/studies/{listing[0]['study_id']}")
    assert [(t["number"], t["state"]) for t in detail["trials"]] == [
        (0, "Complete"), (1, "Fail"), (2, "Complete"), (3, "Running")]
    assert [t["number"] for t in detail["best_trials"]] == [study.best_trial.number]
    assert detail["trials"][2]["values"] == [1.1]
    assert {p["name"] for p in detail["trials"][0]["params"]} == set(study.trials[0].params)


@pytest.mark.slow
def test_report_of_a_real_sweep_trades_the_best_checkpoint(tmp_path, ray_session, monkeypatch,
                                                            capsys):
    from conftest import make_tiny_sweep
    from sweep_helpers import write_config

    config = make_tiny_sweep(**{"study": "real", "search.num_samples": 2})
    monkeypatch.setenv("TRADETUNE_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("TRADETUNE_STORAGE", raising=False)
    assert main(["launch", str(write_config(tmp_path / "sweep.yaml", config))]) == 0
    url = f"sqlite:///{tmp_path / 'results' / 'tradetune.db'}"

    assert main(["report", "--study", "real", "--out", str(tmp_path / "report")]) == 0
    out = tmp_path / "report"
    page = check_report(out)
    assert "equity.png" in images(out) and "history.png" in images(out)
    study = optuna.load_study(study_name="real", storage=url)
    assert best_line(study) in page
    assert f"Trial {study.best_trial.number}&#x27;s kept checkpoint trading greedily" in page
    assert "Overfitting check: validation against test" in page
    capsys.readouterr()
    assert main(["evaluate", "--study", "real", "--top", "2", "-f", "json"]) == 0
    compared = json.loads(capsys.readouterr().out)
    assert f"<td>{compared['trials'][0]['trial']}</td>" in page
    assert f"<td>{compared['trials'][0]['test_sharpe']:.4g}</td>" in page
    assert compared["overfitting"]["verdict"].split(" (DSR")[0] in page.replace("&#x27;", "'")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["long_short", "sizes"])
def test_report_trades_the_best_checkpoint_of_every_action_set(name, tmp_path, ray_session,
                                                               monkeypatch):
    from conftest import make_tiny_sweep
    from sweep_helpers import write_config

    config = make_tiny_sweep(**{"study": name, "search.num_samples": 1,
                                "training.max_iterations": 1, "training.min_evals": 1,
                                "env.actions": json.dumps(ACTION_SETS[name])})
    monkeypatch.setenv("TRADETUNE_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("TRADETUNE_STORAGE", raising=False)
    assert main(["launch", str(write_config(tmp_path / "sweep.yaml", config))]) == 0

    assert main(["report", "--study", name, "--out", str(tmp_path / "report")]) == 0
    page = check_report(tmp_path / "report")
    assert "equity.png" in images(tmp_path / "report")
    assert "▲ buy (exposure up), ▼ sell (exposure down); shaded: short;" in page
    assert '<p class="market">Market (fixed for the study): actions ' in page



def test_a_narrow_log_axis_gets_labelled_ticks():
    """The slice plot's learning-rate axis (1e-5..8e-5, within one decade) had no tick label."""
    import matplotlib.pyplot as plt

    from search.results.report_plots import label_log_axis

    figure, axes = plt.subplots()
    axes.set_xscale("log")
    axes.set_xlim(1e-5, 8e-5)
    label_log_axis(axes.xaxis)
    figure.canvas.draw()
    labels = [t.get_text() for t in axes.get_xticklabels()
              if t.get_text() and 1e-5 <= t.get_position()[0] <= 8e-5]
    plt.close(figure)
    assert len(labels) >= 3, labels
