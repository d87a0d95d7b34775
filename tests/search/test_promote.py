"""`tradetune promote`: a trial retrained on seeds the study never used, judged and stored."""
from __future__ import annotations

import json
import subprocess
import math
import statistics
from pathlib import Path

import pytest

from conftest import make_tiny_sweep
from search.cli import main
from sweep_helpers import json_out, run_cli, trials, write_config


def _study_seeds(study_trials, n_seeds: int) -> set[int]:
    """Every run seed the trainable derived from the seeds the study stored on its trials."""
    from trainables.runs import Run

    return {Run(0, None, s).seed(t.user_attrs["seed"])
            for t in study_trials if "seed" in t.user_attrs for s in range(n_seeds)}


# -- fast: seeds, rule, errors -------------------------------------------------------------------

def _frozen(number: int, attrs: dict, state: str = "COMPLETE"):
    import optuna

    trial = optuna.trial.create_trial(state=optuna.trial.TrialState[state], user_attrs=attrs,
                                      value=1.0 if state == "COMPLETE" else None)
    trial.number = number
    return trial


def test_used_seeds_cover_run_seeds_unstored_seeds_and_earlier_promotions():
    from search.sweep.promote import used_seeds
    from trainables.seeds import trial_seed
    from trainables.runs import Run

    config = {"search": {"seed": 42}, "training": {"seeds": 3}}
    study = [_frozen(0, {"seed": 111}),  # a stored seed other than the derived one
             _frozen(1, {}, "FAIL"),        # failed before its seed was stored
             _frozen(2, {"seed": trial_seed(42, 2),
                         "promotion": {"seeds": [7, 8], "earlier_seeds": [9]}})]
    used = used_seeds(study, config)
    for seed in (111, trial_seed(42, 0), trial_seed(42, 1), trial_seed(42, 2)):
        assert {Run(0, None, s).seed(seed) for s in range(3)} <= used
    assert {7, 8, 9} <= used
    assert len(used) == 4 * 3 + 3


def _apart(fresh, used, margin: int) -> bool:
    seeds = [*fresh, *used]
    return all(abs(a - b) >= margin for i, a in enumerate(seeds) for b in seeds[:i])


def test_fresh_seeds_keep_away_from_every_used_seed():
    from search.sweep.promote import SEED_MARGIN, fresh_seeds

    first = fresh_seeds(42, 3, 5, set())
    assert len(set(first)) == 5 and first == fresh_seeds(42, 3, 5, set())  # reproducible
    assert all(0 <= s < 2**32 for s in first) and _apart(first, [], SEED_MARGIN)
    # The first candidates are taken, or lie next to a used seed (RLlib seeds env copies with
    # seed + j, so a neighbour would share their streams).
    used = {first[0], first[1] + 5, first[2] - SEED_MARGIN + 1}
    again = fresh_seeds(42, 3, 5, used)
    assert _apart(again, used, SEED_MARGIN) and again[:2] == first[3:]
    assert fresh_seeds(42, 3, 1, {first[0] - SEED_MARGIN}) == [first[0]]  # exactly the margin
    assert fresh_seeds(42, 3, 1, {first[0] + SEED_MARGIN - 1}) == [first[1]]


@pytest.mark.parametrize("value, scores, verdict", [
    (1.0, [0.6, 0.5], "reproduces"),           # mean 0.55 >= 50% of 1.0
    (1.0, [0.5, 0.3], "does not reproduce"),   # mean 0.4 < 50%
    (0.1, [-0.2, 0.1], "does not reproduce"),  # negative mean: no edge
    # the ratio rule is undefined for a study value <= 0 (issue 22 row 5: -2.996 against 9.87
    # said "reproduces"): no verdict, the figures stay
    (-0.5, [0.2, 0.2], "no verdict: the study's value is <= 0 (-0.5)"),
    (-2.996, [9.87, 9.87], "no verdict: the study's value is <= 0 (-2.996)"),
    (0.0, [0.0], "no verdict: the study's value is <= 0 (0)"),
    (0.0, [-1.0, 3.0], "no verdict: the study's value is <= 0 (0)"),
])
def test_verdict_rule(value, scores, verdict):
    from search.sweep.promote import summarise

    result = summarise(value, scores)
    assert result["verdict"].startswith(verdict)
    assert ("ratio rule is undefined" in result["verdict"]) == (value <= 0)
    assert result["ratio"] == (pytest.approx(result["mean"] / value) if value > 0 else None)
    assert result["mean"] == pytest.approx(statistics.fmean(scores))
    assert result["std"] == (pytest.approx(statistics.stdev(scores)) if len(scores) > 1
                             else None)


@pytest.fixture
def untrained_study(tmp_path, monkeypatch):
    """A study as `launch` creates it, with one FAIL and one COMPLETE trial and no training."""
    import optuna

    from search.study import studies
    from search.study.storage import open_storage
    from spaces import get_space

    results = tmp_path / "results"
    monkeypatch.setenv("TRADETUNE_RESULTS", str(results))
    monkeypatch.delenv("TRADETUNE_STORAGE", raising=False)
    config = make_tiny_sweep(study="quick")
    url = f"sqlite:///{results / 'tradetune.db'}"
    storage = open_storage(url, create_dirs=True)
    space = get_space("ppo", config["search"]["space_overrides"], None)
    study = studies.create_study(storage, config, space, studies.data_fingerprint(config["data"]))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    study.add_trial(optuna.trial.create_trial(value=0.5, params={}, distributions={}))
    return url


@pytest.mark.parametrize("args, message", [
    (["--seeds", "0"], "--seeds must be between 1 and 100, got 0"),
    (["--seeds", "101"], "--seeds must be between 1 and 100, got 101"),
    (["--seeds", "2", "--trial", "0"], "trial 0 of study 'quick' is FAIL, not COMPLETE"),
    (["--seeds", "2", "--trial", "7"], "study 'quick' has no trial 7"),
    (["--seeds", "2", "--study", "quik"], "no study named 'quik'"),
])
def test_bad_requests_are_one_line_and_store_nothing(untrained_study, capsys, args, message):
    argv = ["promote", *(args if "--study" in args else ["--study", "quick", *args])]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not [t for t in trials(untrained_study, "quick") if "promotion" in t.user_attrs]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_store_replaces_the_promotion_of_a_finished_trial(backend, tmp_path):
    """Optuna's API refuses to change a finished trial; the promotion still lands, once."""
    import uuid

    import optuna

    from search.sweep.promote import store
    from search.results.summaries import trial_summary

    url = (f"sqlite:///{tmp_path / 'p.db'}" if backend == "sqlite"
           else "postgresql://postgres@127.0.0.1:5432/test")
    name = f"store-{uuid.uuid4().hex[:8]}"
    study = optuna.create_study(study_name=name, storage=url)
    try:
        study.add_trial(optuna.trial.create_trial(value=1.0, user_attrs={"seed": 3}))
        trial_id = study.get_trials()[0]._trial_id
        store(url, trial_id, {"seeds": [1], "verdict": "reproduces"})
        store(url, trial_id, {"seeds": [2], "verdict": "does not reproduce"})
        trial = optuna.load_study(study_name=name, storage=url).get_trials()[0]
        assert trial.user_attrs == {"seed": 3, "promotion": {"seeds": [2],
                                                             "verdict": "does not reproduce"}}
        assert trial_summary(trial)["promotion"]["seeds"] == [2]
    finally:
        optuna.delete_study(study_name=name, storage=url)


def test_a_stored_promotion_of_a_value_at_or_below_zero_shows_no_verdict_anywhere(
        tmp_path, monkeypatch):
    """A promotion stored before the rule said "no verdict" (it said "reproduces" for -2.996
    against 9.87): best, the report, the CLI line and the model card all judge it again."""
    from search import api
    from search.cli.render import _promotion_line
    from search.results.onnx_bundle import _promotion
    from search.results.report import _promotion_html
    from search.study.trials import replace_finished_trial_attr
    from sweep_helpers import add_study

    results = tmp_path / "results"
    monkeypatch.setenv("TRADETUNE_RESULTS", str(results))
    url = f"sqlite:///{results / 'tradetune.db'}"
    add_study(url, results, "neg", [-2.996])
    stored = {"study_value": -2.996, "seeds": [5000, 6000], "scores": [9.8, 9.94],
              "mean": 9.87, "std": 0.1, "ratio": -3.29, "verdict": "reproduces",
              "rule": "reproduces when the fresh seeds' mean score is above 0 and at least 50% "
                      "of the study's value", "when": "2026-01-01T00:00:00+0000"}
    replace_finished_trial_attr(url, trials(url, "neg")[0]._trial_id, "promotion", stored)
    row = api.open_study("neg").best(1)[0]
    promotion = row["promotion"]
    assert promotion["verdict"].startswith("no verdict: the study's value is <= 0 (-2.996), "
                                           "where the ratio rule is undefined")
    assert (promotion["mean"], promotion["std"], promotion["scores"]) == (9.87, 0.1, [9.8, 9.94])
    assert promotion["ratio"] is None and "no verdict when" in promotion["rule"]
    line, page, card = (_promotion_line(promotion), "".join(_promotion_html([row])),
                        _promotion(stored))
    assert line.startswith("no verdict: ") and card.startswith("no verdict: ")
    assert "<td>no verdict: " in page and "<td>reproduces</td>" not in page


def test_report_section_lists_promotions():
    from search.results.report import _promotion_html

    promotion = {"study_value": 1.2, "seeds": [5, 6], "mean": 0.9, "std": 0.1,
                 "verdict": "reproduces", "when": "2026-01-01T00:00:00+0000",
                 "rule": "reproduces when ..."}
    page = "".join(_promotion_html([{"number": 3, "promotion": promotion}, {"number": 4}]))
    assert "<td>3</td>" in page and "reproduces" in page and "<td>4</td>" not in page
    assert "tradetune promote" in "".join(_promotion_html([{"number": 4}]))


# -- slow: a real sweep, a real promotion ---------------------------------------------------------

@pytest.mark.slow
def test_promote_the_best_trial_on_fresh_seeds(tmp_path, ray_session, monkeypatch, capsys):
    from search.sweep.promote import SEED_MARGIN

    results = tmp_path / "results"
    url = f"sqlite:///{results / 'tradetune.db'}"
    monkeypatch.setenv("TRADETUNE_RESULTS", str(results))
    monkeypatch.delenv("TRADETUNE_STORAGE", raising=False)
    config = make_tiny_sweep(**{"study": "promo", "search.num_samples": 2, "training.seeds": 2,
                                "training.max_iterations": 3})
    assert main(["launch", str(write_config(tmp_path / "sweep.yaml", config))]) == 0
    capsys.readouterr()
    best = max((t for t in trials(url, "promo") if t.state.name == "COMPLETE"),
               key=lambda t: t.value)

    assert main(["promote", "--study", "promo", "--seeds", "2", "-f", "json"]) == 0
    out = json.loads(capsys.readouterr().out)

    assert out["trial"] == best.number and out["study_value"] == best.value
    assert len(out["seeds"]) == len(set(out["seeds"])) == 2
    assert len(out["scores"]) == 2 and all(math.isfinite(s) for s in out["scores"])
    assert out["mean"] == pytest.approx(statistics.fmean(out["scores"]))
    assert out["std"] == pytest.approx(statistics.stdev(out["scores"]))
    # Judged against holding the asset, as the study is (search/results/verdict.py).
    assert out["verdict"].startswith(("reproduces", "does not reproduce", "no edge to reproduce"))
    assert "active Sharpe" in out["rule"] and len(out["fresh_active_sharpe_per_bar"]) == 2
    assert list(out["stress"]) == ["commission x2", "delay 1 bar", "slippage +10 bps"]
    assert out["study_run_scores"]["seed_scores"] == best.user_attrs["metrics"]["seed_scores"]
    # Disjoint from every seed any trial of the study trained with (both seeds of each).
    study_trials = trials(url, "promo")
    assert _apart(out["seeds"], _study_seeds(study_trials, 2), SEED_MARGIN)
    # The fresh seeds reached the trainable: each Tune trial reported its own one.
    reported = {json.loads(line)["trial_seed"]
                for path in Path(out["results"]).glob("*/result.json")
                for line in path.read_text().splitlines()}
    assert Path(out["results"]).parent == results / "promo" and reported == set(out["seeds"])

    stored = next(t for t in study_trials if t.number == best.number).user_attrs["promotion"]
    assert stored == out
    rows = json_out(run_cli(["best", "--study", "promo", "-f", "json"], results))
    assert rows[0]["number"] == best.number and rows[0]["promotion"] == out
    table = run_cli(["best", "--study", "promo"], results).stdout
    assert f"fresh seeds: {out['verdict']}: 2 fresh seeds" in table


@pytest.mark.slow
def test_promote_without_address_starts_its_own_ray_beside_a_ray_start_cluster(tmp_path):
    """README: without --address a command starts its own local Ray, even if a `ray start`
    cluster runs on the machine. Promote used to join that cluster (and die with a traceback
    on one with token authentication, as the pinned Ray's `ray start` makes by default)."""
    from ray_start_cluster import RayStartCluster
    from sweep_helpers import REPO, TRADETUNE, cli_env

    results = tmp_path / "results"
    config = make_tiny_sweep(**{"study": "own", "search.num_samples": 1,
                                "training.max_iterations": 2})
    launched = run_cli(["launch", str(write_config(tmp_path / "sweep.yaml", config))], results)
    assert launched.returncode == 0, launched.stderr[-2000:]
    with RayStartCluster(token=True) as cluster:
        cluster.head(cpus=1)
        done = subprocess.run([*TRADETUNE, "promote", "--study", "own", "--seeds", "1",
                               "-f", "json"], cwd=REPO, capture_output=True, text=True,
                              env={**cli_env(results), "RAY_TMPDIR": cluster.dir},
                              timeout=600)
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    out = json_out(done)
    assert out["trial"] == 0 and len(out["scores"]) == 1
