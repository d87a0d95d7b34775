"""The example configs the README points to: each passes `tradetune launch --dry-run`, and each
action set the README documents has its example."""
from __future__ import annotations

import re

import pytest

from search.cli import main
from sweep_helpers import REPO

EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


def test_the_readme_names_an_example_for_every_action_set():
    readme = (REPO / "README.md").read_text()
    named = set(re.findall(r"examples/[\w.-]+\.yaml", readme))
    assert {"examples/quickstart.yaml", "examples/regimes_long_short.yaml",
            "examples/regimes_sizes.yaml"} <= named
    assert named <= {str(path.relative_to(REPO)) for path in EXAMPLES}, "a README example is missing"


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_every_example_config_passes_a_dry_run(path, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TRADETUNE_RESULTS", str(tmp_path))
    monkeypatch.delenv("TRADETUNE_STORAGE", raising=False)
    assert main(["launch", str(path), "--dry-run"]) == 0, capsys.readouterr().err
    assert "dry run: every check passed" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []  # nothing created


@pytest.mark.slow
@pytest.mark.parametrize("example", ["regimes_long_short.yaml", "regimes_sizes.yaml"])
def test_a_tiny_sweep_trains_and_scores_with_the_examples_action_set(example, tmp_path,
                                                                     ray_session, monkeypatch,
                                                                     capsys):
    """The example's env section (action set and frictions) on the tiny sweep: trials train on
    the vectorised env, validate, and the best trial scores on the test split."""
    import json

    import optuna

    from conftest import make_tiny_sweep
    from search.config.yaml_loader import read_yaml_file
    from sweep_helpers import write_config

    env = read_yaml_file(REPO / "examples" / example)["env"]
    config = make_tiny_sweep(**{"study": "acts", "search.num_samples": 1})
    config["env"].update(env)
    path = write_config(tmp_path / "sweep.yaml", config)
    monkeypatch.setenv("TRADETUNE_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("TRADETUNE_STORAGE", raising=False)
    assert main(["launch", str(path)]) == 0
    capsys.readouterr()
    url = f"sqlite:///{tmp_path / 'results' / 'tradetune.db'}"
    stored = optuna.load_study(study_name="acts", storage=url).user_attrs["tradetune_config"]
    stored = stored["env"]
    assert {key: stored[key] for key in env} == {**env, "slippage": {
        "bps": 0.0, "vol_mult": 0.0, "vol_window": 24, **env["slippage"]}}  # the provenance
    assert main(["best", "--study", "acts", "-f", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["market"]["actions"] == env["actions"]
    assert rows[0]["market"]["levels"][0] == -1.0
    assert main(["evaluate", "--study", "acts", "--split", "test", "-f", "json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["commission_paid"] >= 0 and scored["slippage_paid"] >= 0
    assert 0.0 <= scored["time_short"] <= scored["time_in_market"] <= 1.0
