"""The README's multi-machine path, for real: a head and a second node started as separate
`ray start` processes with token authentication (Ray 2.60 turns it on wherever a token exists),
drivers connecting through --address (issue 22 row 13)."""
from __future__ import annotations

import subprocess
import uuid

import pytest

from conftest import make_tiny_sweep
from ray_start_cluster import RayStartCluster
from sweep_helpers import REPO, TRADETUNE, cli_env, poll, trials, write_config

pytestmark = pytest.mark.slow
PG = "postgresql://postgres@127.0.0.1:5432/test"


def _driver_env(cluster: RayStartCluster, results, home, token: str | None = None) -> dict:
    """A driver on another machine of the cluster: its own home (no ~/.ray/auth_token unless
    given one), the cluster's RAY_TMPDIR, and RAY_AUTH_MODE as ./tt leaves it (disabled)."""
    env = {**cli_env(results, PG), "RAY_TMPDIR": cluster.dir, "HOME": str(home)}
    if token is not None:
        env["RAY_AUTH_TOKEN"] = token
    return env


@pytest.mark.parametrize("token, says", [
    (None, "uses token authentication and this machine has no token: copy the token from the "
           "head node"),
    ("0" * 32, "refused this machine's token"),
])
def test_a_missing_or_wrong_token_is_one_line_that_names_the_fix(tmp_path, token, says):
    config = write_config(tmp_path / "s.yaml", make_tiny_sweep(study=f"auth-{uuid.uuid4().hex[:6]}"))
    with RayStartCluster(token=True) as cluster:
        cluster.head(cpus=1)
        done = subprocess.run([*TRADETUNE, "launch", str(config), "--address", cluster.address],
                              cwd=REPO, capture_output=True, text=True, timeout=300,
                              env=_driver_env(cluster, tmp_path / "r", tmp_path, token))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr[-3000:]
    assert lines[0].startswith("tradetune launch: error: the Ray cluster at ") and says in lines[0]


def test_two_drivers_share_a_postgres_study_across_two_token_nodes(tmp_path):
    study = f"token-nodes-{uuid.uuid4().hex[:8]}"
    config = write_config(tmp_path / "sweep.yaml", make_tiny_sweep(**{
        "study": study, "search.num_samples": 4, "training.max_iterations": 2}))
    try:
        with RayStartCluster(token=True) as cluster:
            cluster.head(cpus=1)
            cluster.node(cpus=1)
            env_a = _driver_env(cluster, tmp_path / "a", tmp_path, cluster.token)
            log = open(tmp_path / "a.log", "w")
            first = subprocess.Popen([*TRADETUNE, "launch", str(config), "--address",
                                      cluster.address], cwd=REPO, env=env_a, stdout=log,
                                     stderr=subprocess.STDOUT)
            poll(lambda: trials(PG, study), 300, "the first driver's first trial")
            second = subprocess.run([*TRADETUNE, "resume", "--study", study, "--address",
                                     cluster.address], cwd=REPO, capture_output=True, text=True,
                                    env=_driver_env(cluster, tmp_path / "b", tmp_path,
                                                    cluster.token), timeout=600)
            assert first.wait(timeout=600) == 0, (tmp_path / "a.log").read_text()[-3000:]
            assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
        done = trials(PG, study)
        assert len([t for t in done if t.state.name == "COMPLETE"]) == 4
        assert len({t.user_attrs["driver"] for t in done}) == 2
        assert len({t.user_attrs["node_id"] for t in done}) == 2, "trials ran on one node only"
    finally:
        import optuna

        try:
            optuna.delete_study(study_name=study, storage=PG)
        except KeyError:
            pass
