"""The deployable export: in-graph features against trainables/features.py, per-bar actions of
``evaluate --actions``, and the proof that ``policy.onnx`` run by onnxruntime on raw bars trades
like ``evaluate`` for every registered algorithm, also outside TradeTune's environment."""
from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import make_tiny_sweep
from search.cli import main
from spaces import SEARCH_SPACES
from sweep_helpers import REPO, run_cli, write_config
from trainables import onnx_policy
from trainables.actions import action_levels, action_meanings
from trainables.bar_files import load_bars
from trainables.features import compute_features
from trainables.synthetic import synthetic_bars
from trainables.evaluation import evaluate

# A one-trial, one-iteration sweep per algorithm (it trains in seconds) with the tiny settings
# its space declares (``ALGORITHM.tiny``); its ``tiny_seed`` gives a kept policy that trades,
# so the agreement below is not the trivial one of a policy that never leaves cash.
MAX_WINDOW = 30  # the largest window_size the built-in spaces search
# One action set of each kind: today's, the named long-short one and a list of sizes.
ACTION_SETS = {"long_only": "long_only", "long_short": "long_short",
               "sizes": {"sizes": [-1, -0.5, 0, 0.5, 1]}}


# -- the features graph against data.py ------------------------------------------------------

def _graph_features(bars: pd.DataFrame, names: list[str], window: int, ends: np.ndarray,
                    tmp_path: Path) -> np.ndarray:
    """The feature rows the exported graph computes for windows ending at ``ends``, run by
    onnxruntime: (len(ends), window, n_features)."""
    import onnxruntime
    import torch

    model = onnx_policy.BarFeatures(names, window)
    lookback = model.lookback
    path = tmp_path / "features.onnx"
    onnx_policy.export_onnx(model, (torch.ones(1, lookback, 5),), ["bars"], str(path))
    session = onnxruntime.InferenceSession(str(path))
    raw = bars[list(onnx_policy.BAR_COLUMNS)].to_numpy(np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(raw, (lookback, 5))[:, 0]
    out = [session.run(None, {"bars": np.ascontiguousarray(windows[chunk - lookback + 1])})[0]
           for chunk in np.array_split(ends, max(1, len(ends) // 1000))]
    return np.concatenate(out)


def _largest_difference(bars: pd.DataFrame, tmp_path: Path, window: int = MAX_WINDOW
                        ) -> tuple[float, str]:
    """max |graph - data.py| over every bar and every row of the observation window."""
    features = compute_features(bars).astype(np.float32)
    names = list(features.columns)
    assert names == list(onnx_policy.DEFAULT_FEATURES)
    lookback = onnx_policy.lookback_for(window)
    ends = np.arange(lookback - 1, len(bars))
    graph = _graph_features(bars, names, window, ends, tmp_path)
    reference = np.lib.stride_tricks.sliding_window_view(
        features.to_numpy(), (window, len(names)))[:, 0][ends - window + 1]
    assert np.isfinite(reference).all() and np.isfinite(graph).all()
    difference = np.abs(graph - reference).reshape(-1, len(names)).max(axis=0)
    return float(difference.max()), names[int(difference.argmax())]


def _with_flat_stretches(bars: pd.DataFrame) -> pd.DataFrame:
    """Bars with a 60-bar stretch of one price and one volume, and zero-volume bars: the
    zero-spread branches of Bollinger %B, the volume z-score and RSI."""
    bars = bars.copy()
    bars.iloc[1000:1060, :] = bars.iloc[1000, :].to_numpy()
    bars.iloc[1500:1530, bars.columns.get_loc("volume")] = 0.0
    return bars


def test_graph_features_match_data_py_on_the_real_coinbase_bars(coinbase_csv, tmp_path):
    bars = load_bars(coinbase_csv)
    largest, name = _largest_difference(bars, tmp_path)
    print(f"Coinbase: largest |graph - data.py| = {largest:.2e} ({name})")
    assert largest <= onnx_policy.FEATURE_TOLERANCE, name
    assert largest <= 1.5 * max(onnx_policy.MEASURED_DIFFERENCE.values())
    # On bars already rounded to float32 (what the graph receives), what is left is float32
    # arithmetic: a few units in the last place of features up to 10.
    rounded, name = _largest_difference(bars.astype(np.float32).astype(np.float64), tmp_path)
    assert rounded <= 1e-6, name


def test_graph_features_match_data_py_on_synthetic_bars_with_flat_stretches(tmp_path):
    bars = _with_flat_stretches(synthetic_bars(3000, seed=3))
    largest, name = _largest_difference(bars, tmp_path)
    print(f"synthetic: largest |graph - data.py| = {largest:.2e} ({name})")
    assert largest <= onnx_policy.FEATURE_TOLERANCE, name


@pytest.mark.parametrize("window", [1, 5, 17])
def test_graph_features_match_for_every_window_and_feature_subset(window, tmp_path):
    """The lookback follows the window, and a CSV without volume (no volume_z_24 feature)
    gets a graph without it, columns in data.py's order."""
    bars = synthetic_bars(1200, seed=11)
    no_volume = compute_features(bars.drop(columns="volume")).astype(np.float32)
    names = list(no_volume.columns)
    assert "volume_z_24" not in names
    lookback = onnx_policy.lookback_for(window)
    ends = np.arange(lookback - 1, len(bars), 3)
    graph = _graph_features(bars, names, window, ends, tmp_path)
    reference = np.stack([no_volume.to_numpy()[e - window + 1:e + 1] for e in ends])
    assert graph.shape == reference.shape == (len(ends), window, len(names))
    assert np.abs(graph - reference).max() <= onnx_policy.FEATURE_TOLERANCE


def test_a_lookback_shorter_than_the_slowest_average_is_refused():
    with pytest.raises(ValueError, match="too short"):
        onnx_policy.BarFeatures(list(onnx_policy.DEFAULT_FEATURES), 10, lookback=50)


# -- every registered algorithm's network exports -------------------------------------------

def _untrained_module(algorithm: str, overrides: dict, actions: str | dict = "long_only"):
    """A freshly initialised RLModule of ``algorithm`` for a 5-bar window on synthetic data,
    with one output per action of ``actions``."""
    import optuna

    from spaces import get_space
    from trainables.env import TradingEnv
    from trainables.rllib_trainable import algorithm_config

    space = get_space(algorithm, {"window_size": 5, "hidden_width": 16, **overrides})
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    settings = space(trial)
    data = {"synthetic": {"n_bars": 1200, "seed": 7}}
    sweep = {"algorithm": algorithm, "data": data, "env": {}, "training": {}}
    env = TradingEnv({"data": data, **settings["env"], "actions": actions, "split": "test"})
    config = algorithm_config(algorithm, settings, sweep)
    spec = config.get_default_rl_module_spec()
    spec.observation_space, spec.action_space = env.observation_space, env.action_space
    spec.model_config = config.model_config
    return spec.build(), env


@pytest.mark.parametrize("action_set", sorted(ACTION_SETS))
@pytest.mark.parametrize(("algorithm", "overrides"), [
    *[(name, {}) for name in sorted(SEARCH_SPACES)],
    ("dqn", {"dueling": True}), ("dqn", {"dueling": False})])  # dueling: torch.nanmean
def test_every_algorithm_exports_through_the_same_path(algorithm, overrides, action_set,
                                                       tmp_path):
    """The greedy action of every registered algorithm's network, read the way evaluation
    reads it, survives the ONNX export (DQN used to crash with KeyError 'qf_preds'), at every
    exposure level of every kind of action set."""
    import onnxruntime
    import torch

    from trainables.evaluation import as_policy

    module, env = _untrained_module(algorithm, overrides, ACTION_SETS[action_set])
    obs = np.concatenate([env.observations(level) for level in env.levels])
    with torch.no_grad():  # the output column the space declares is the one the module gives
        out = module.forward_inference({"obs": torch.as_tensor(obs)})
    assert SEARCH_SPACES[algorithm].ALGORITHM.greedy.key in out
    path = tmp_path / "policy_obs.onnx"
    onnx_policy.export_onnx(onnx_policy.ObsPolicy(module), (torch.as_tensor(obs[:1]),),
                            ["obs"], str(path))
    actions = onnxruntime.InferenceSession(str(path)).run(["action"], {"obs": obs})[0]
    assert actions.dtype == np.int64 and actions.shape == (len(obs),)
    assert set(actions) <= set(range(len(env.levels)))
    assert np.array_equal(actions, as_policy(module)(obs))


# -- per-bar actions -------------------------------------------------------------------------

def _stepping(levels: tuple[float, ...]):
    """One level up after an up bar, one down after a fall of more than 0.2%, else stay: a
    policy that depends on its position, over any action set (long-only: enter and leave)."""
    from trainables.evaluation import level_index

    def act(obs: np.ndarray) -> np.ndarray:
        last = obs[:, -1 - (obs.shape[1] - 1) // 5]  # log_return_1 of the newest row
        held = np.array([level_index(levels, p) for p in obs[:, -1]])
        step = np.where(last > 0, 1, np.where(last < -0.002, -1, 0))
        return np.clip(held + step, 0, len(levels) - 1).astype(np.int64)
    return act


@pytest.mark.parametrize("name", sorted(ACTION_SETS))
def test_per_bar_rows_follow_the_run(name, tmp_path):
    levels = action_levels(ACTION_SETS[name])
    config = {"data": {"synthetic": {"n_bars": 1500, "seed": 7}}, "window_size": 5,
              "actions": ACTION_SETS[name]}
    result = evaluate(_stepping(levels), config, "test")
    path = tmp_path / "actions.csv"
    result.write_actions(path)
    rows = list(csv.DictReader(path.open()))
    meaning = [] if name == "long_only" else ["action_meaning"]
    assert list(rows[0]) == ["timestamp", "close", "action", *meaning, "position",
                             "portfolio_value", "buy_and_hold_value"]
    assert len(rows) == result.bars and rows[0]["timestamp"] == result.dates[0]
    actions = [int(r["action"]) for r in rows]
    positions = [float(r["position"]) for r in rows]
    # Each action's exposure is the next bar's position.
    assert positions[0] == 0 and positions[1:] == [levels[a] for a in actions[:-1]]
    assert set(actions) == set(range(len(levels)))
    if name == "long_only":  # as the file always was: 0 and 1, no meaning column
        assert {r["position"] for r in rows} == {"0", "1"}
    else:
        assert [r["action_meaning"] for r in rows] == [action_meanings(levels)[a]
                                                       for a in actions]
        assert {r["position"] for r in rows} == {f"{level:g}" for level in levels}
    assert float(rows[-1]["portfolio_value"]) == pytest.approx(result.final_net_worth)
    assert float(rows[-1]["buy_and_hold_value"]) == pytest.approx(
        10_000 * (1 + result.buy_and_hold_pct / 100))
    assert float(rows[0]["portfolio_value"]) == float(rows[0]["buy_and_hold_value"]) == 10_000


def test_actions_with_top_is_a_usage_error(tmp_path, results_dir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--study", "s", "--top", "2", "--actions", str(tmp_path / "a.csv")])
    assert exit_info.value.code == 2
    assert "--actions writes one trial's actions" in capsys.readouterr().err


def test_actions_into_a_directory_is_one_line(tmp_path, results_dir, capsys):
    assert main(["evaluate", "--study", "s", "--actions", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a directory" in err


def test_export_onnx_refuses_data_that_changed_since_launch(tmp_path, results_dir, capsys):
    """The bundle describes the data the policy trained on: an edited or removed data file is
    a one-line error, not a policy.json with other dates and fingerprint."""
    from search.study.storage import open_storage
    from search.study.studies import create_study, data_fingerprint
    from spaces import get_space

    csv_path = tmp_path / "bars.csv"
    synthetic_bars(1500, seed=7).to_csv(csv_path)
    config = make_tiny_sweep(**{"study": "csv", "data.path": str(csv_path),
                                "data.synthetic": "null"})
    search = config["search"]
    space = get_space(config["algorithm"], search["space_overrides"], search["space"])
    url = f"sqlite:///{results_dir / 'tradetune.db'}"
    study = create_study(open_storage(url, create_dirs=True), config, space,
                         data_fingerprint(config["data"]))
    trial = study.ask()
    space(trial)
    (tmp_path / "checkpoint").mkdir()
    trial.set_user_attr("checkpoint", str(tmp_path / "checkpoint"))
    study.tell(trial, 0.5)
    capsys.readouterr()

    with csv_path.open("a") as handle:
        handle.write("2020-03-04 00:00:00,1,1,1,1,1\n")
    out = ["export", "--study", "csv", "--out", str(tmp_path / "x"), "--onnx"]
    assert main(out) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "changed since study" in err, err
    csv_path.unlink()
    assert main(out) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot be read" in err, err
    assert not (tmp_path / "x" / "policy.json").exists()


# -- the proof: policy.onnx on raw bars trades like evaluate, for every algorithm -----------

# Every algorithm long-only, and PPO with the other action sets (with slippage and borrow).
EXPORTS = [*((name, "long_only") for name in sorted(SEARCH_SPACES)),
           ("ppo", "long_short"), ("ppo", "sizes")]


@pytest.fixture(scope="module", params=EXPORTS, ids=[f"{a}-{s}" for a, s in EXPORTS])
def exported(request, tmp_path_factory, ray_session):
    """One tiny trial of the algorithm and action set, exported with --onnx and evaluated with
    --actions."""
    algorithm, action_set = request.param
    declared = SEARCH_SPACES[algorithm].ALGORITHM
    root = tmp_path_factory.mktemp(f"onnx-{algorithm}-{action_set}")
    results = root / "results"
    changes = {"study": algorithm, "algorithm": algorithm, "search.num_samples": 1,
               "training.max_iterations": 1, "training.min_evals": 1,
               "search.seed": declared.tiny_seed,
               "search.space_overrides": json.dumps(declared.tiny)}
    if action_set != "long_only":
        changes.update({"env.actions": json.dumps(ACTION_SETS[action_set]),
                        "env.slippage": "{bps: 5, vol_mult: 0.1}", "env.borrow_rate": 0.2})
    path = write_config(root / "sweep.yaml", make_tiny_sweep(**changes))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRADETUNE_RESULTS", str(results))
        patch.delenv("TRADETUNE_STORAGE", raising=False)
        assert main(["launch", str(path)]) == 0
    out = root / "export"
    done = run_cli(["export", "--study", algorithm, "--out", str(out), "--onnx"], results)
    assert done.returncode == 0, done.stderr
    actions = root / "actions.csv"
    done = run_cli(["evaluate", "--study", algorithm, "--split", "test", "--actions",
                    str(actions), "-f", "json"], results)
    assert done.returncode == 0, done.stderr
    return {"algorithm": algorithm, "action_set": action_set,
            "levels": action_levels(ACTION_SETS[action_set]), "out": out, "actions": actions,
            "stdout": done.stdout, "config": yaml_config(path)}


def yaml_config(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


def _raw_bars(config: dict) -> pd.DataFrame:
    synthetic = config["data"]["synthetic"]
    return synthetic_bars(synthetic["n_bars"], synthetic["seed"], synthetic["freq"])


def _onnx_rollout(session, bars: pd.DataFrame, timestamps: list[str], lookback: int,
                  exposures: list[float], first_position: float) -> tuple[list[int], list[float]]:
    """Run policy.onnx bar by bar on raw bars, feeding back the exposure of its own action
    (``exposures``: policy.json's, by action index)."""
    raw = bars[list(onnx_policy.BAR_COLUMNS)].to_numpy(np.float32)
    ends = bars.index.get_indexer(pd.DatetimeIndex(timestamps))
    assert (ends >= lookback - 1).all()
    windows = np.stack([raw[e - lookback + 1:e + 1] for e in ends])
    # Every bar at every exposure in one batch each (the dynamic batch axis), then the rollout.
    table = [session.run(["action"], {"bars": windows,
                                      "position": np.full((len(ends), 1), e, np.float32)})[0]
             for e in exposures]
    actions, positions, index = [], [], exposures.index(first_position)
    for row in range(len(ends)):
        positions.append(exposures[index])
        actions.append(int(table[index][row]))
        index = actions[-1]
    return actions, positions


@pytest.mark.slow
def test_policy_onnx_on_raw_bars_trades_like_evaluate(exported):
    import onnxruntime

    out = exported["out"]
    names = {p.name for p in out.iterdir()}
    assert {"policy.onnx", "policy_obs.onnx", "policy.json", "MODEL_CARD.md", "checkpoint",
            "rllib_config.json", "sweep_config.json", "trial.json", "bar_files.py"} <= names
    # The reader training used, for examples/run_onnx.py, with the study's reading keys.
    assert (out / "bar_files.py").read_text() == (REPO / "trainables" / "bar_files.py").read_text()
    spec = json.loads((out / "policy.json").read_text())
    assert spec["data"]["reading"] == {"date_column": None, "sep": None, "decimal": None}
    bars_spec = spec["policy.onnx"]
    lookback = bars_spec["lookback"]
    assert lookback == onnx_policy.lookback_for(spec["window_size"])
    assert [i["name"] for i in bars_spec["inputs"]] == ["bars", "position"]
    assert bars_spec["inputs"][0]["shape"] == ["batch", lookback, 5]
    assert bars_spec["inputs"][0]["columns"] == ["open", "high", "low", "close", "volume"]
    assert spec["algorithm"] == exported["algorithm"] and spec["study"] == exported["algorithm"]
    assert spec["bar_interval"] == "1h" and spec["trained_for"]["commission"] == 0.001
    assert spec["trained_for"]["reward"] == "log_return" and len(spec["data"]["fingerprint"]) == 16
    levels = exported["levels"]
    assert spec["actions"] == [{"index": i, "exposure": level, "meaning": meaning}
                               for i, (level, meaning) in enumerate(zip(levels,
                                                                        action_meanings(levels)))]
    assert set(spec["action_meanings"]) == {str(i) for i in range(len(levels))}
    assert spec["trained_for"]["long_only"] == (exported["action_set"] == "long_only")
    assert action_levels(spec["trained_for"]["actions"]) == levels
    assert {"torch", "onnxruntime"} <= set(spec["versions"]["exported_with"])

    session = onnxruntime.InferenceSession(str(out / "policy.onnx"))
    io = ([(i.name, i.type, i.shape) for i in session.get_inputs()],
          [(o.name, o.type) for o in session.get_outputs()])
    assert io[0][0][1:] == ("tensor(float)", ["batch", lookback, 5])
    assert io[0][1][1:] == ("tensor(float)", ["batch", 1])
    assert io[1] == [("action", "tensor(int64)")]

    rows = list(csv.DictReader(exported["actions"].open()))
    result = json.loads(exported["stdout"])
    assert len(rows) == result["bars"] > 100
    exposures = [a["exposure"] for a in spec["actions"]]
    actions, positions = _onnx_rollout(session, _raw_bars(exported["config"]),
                                       [r["timestamp"] for r in rows], lookback, exposures,
                                       float(rows[0]["position"]))
    expected = [int(r["action"]) for r in rows]
    assert len(set(expected)) > 1, "the kept policy never trades: pick another seed"
    agreement = np.mean(np.asarray(actions) == np.asarray(expected))
    used = {spec["actions"][a]["meaning"]: expected.count(a) for a in sorted(set(expected))}
    print(f"{exported['algorithm']} {exported['action_set']}: policy.onnx agrees with evaluate "
          f"on {agreement:.2%} of {len(rows)} bars (actions {used})")
    assert agreement >= 0.999
    assert positions == [float(r["position"]) for r in rows]


@pytest.mark.slow
def test_policy_obs_onnx_matches_the_rllib_module(exported):
    import onnxruntime

    from trainables.env import TradingEnv
    from trainables.evaluation import as_policy
    from trainables.rllib_trainable import load_module

    out = exported["out"]
    rllib = json.loads((out / "rllib_config.json").read_text())
    env = TradingEnv({**rllib["environment"]["env_config"], "split": "test"})
    assert env.levels == exported["levels"]
    obs = np.concatenate([env.observations(level) for level in env.levels])
    session = onnxruntime.InferenceSession(str(out / "policy_obs.onnx"))
    onnx_actions = session.run(["action"], {"obs": obs})[0]
    assert np.array_equal(onnx_actions, as_policy(load_module(out / "checkpoint"))(obs))


@pytest.mark.slow
def test_model_card_says_what_it_knows_and_what_was_not_done(exported):
    card = (exported["out"] / "MODEL_CARD.md").read_text()
    trial = json.loads((exported["out"] / "trial.json").read_text())
    assert f"trial {trial['number']}" in card
    assert "Promotion on fresh seeds: not run" in card
    assert re.search(r"The study's test split: looked at (once|\d+ times) .*this export's look "
                     r"included", card), card
    assert "| metric | validation (selected the trial) | test (nothing in the sweep saw it) |" \
        in card
    assert "Overfitting check" in card and "## Trading terms" in card
    if exported["action_set"] == "long_only":
        assert "long-only" in card and "commission of 0.001" in card
        assert "actions long_only (cash, long 100%), commission 0.1%, slippage none." in card
        assert "| time_short |" not in card
    else:
        levels = ", ".join(action_meanings(exported["levels"]))
        assert (f"({levels}), commission 0.1%, slippage 5 bps + 0.1 x 24-bar volatility, "
                "borrow 20%/year.") in card
        assert "long-only" not in card and "A greedy long-short policy" in card
        for key in ("time_short", "commission_paid", "slippage_paid", "borrow_paid"):
            assert f"| {key} | " in card
    for split in ("train", "val", "test"):
        assert f"- {split}: " in card
    assert f"| sharpe | {trial['metrics']['sharpe']:.4g} |" in card


@pytest.mark.slow
def test_run_onnx_example_runs_without_tradetune(exported, tmp_path):
    """examples/run_onnx.py, copied out of the repository and run by an isolated interpreter
    whose sys.path cannot reach TradeTune's packages, prints the action of the last bar (read
    by the bundle's bar_files.py; tests/examples/test_run_onnx.py checks the refusals)."""
    rows = list(csv.DictReader(exported["actions"].open()))
    last = rows[-1]
    bars = _raw_bars(exported["config"])
    bars = bars.loc[:pd.Timestamp(last["timestamp"])]
    bars_csv = tmp_path / "bars.csv"
    bars.rename_axis("date").to_csv(bars_csv)
    script = tmp_path / "run_onnx.py"
    script.write_text((REPO / "examples" / "run_onnx.py").read_text())

    spec = json.loads((exported["out"] / "policy.json").read_text())
    session_position = last["position"]
    driver = (
        "import os, runpy, sys\n"
        f"repo = os.path.realpath({str(REPO)!r})\n"
        "sys.path = [p for p in sys.path if os.path.realpath(p or '.') != repo]\n"
        "try:\n"
        "    import search\n"
        "except ImportError:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('TradeTune importable: ' + search.__file__)\n"
        f"sys.argv = ['run_onnx.py', {str(exported['out'])!r}, {str(bars_csv)!r}, "
        f"'--position', {session_position!r}]\n"
        "runpy.run_path('run_onnx.py', run_name='__main__')\n"
        "loaded = {'search', 'trainables', 'spaces', 'torch', 'ray'} & set(sys.modules)\n"
        "assert not loaded, loaded\n")
    done = subprocess.run([sys.executable, "-I", "-c", driver], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    match = re.search(r"position (\S+)\): action (\d) = (.+)$", done.stdout.strip())
    assert match, done.stdout
    assert float(match.group(1)) == float(session_position)
    assert int(match.group(2)) == int(last["action"]), done.stdout
    assert match.group(3) == spec["action_meanings"][last["action"]]
    assert str(spec["policy.onnx"]["lookback"]) in done.stdout
