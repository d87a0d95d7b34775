"""A PostgreSQL password never lands anywhere in clear.

One tiny sweep runs against a password-protected private PostgreSQL server with the password
written literally in the storage URL (the worst case: config file and command line), then the
queries and export run on it. Every byte the run wrote is searched for the password: the results
directory (Tune's experiment state and pickles, searcher state, trial logs, checkpoints), the
exported folder, everything printed, the Ray session directory of each driver, and the study's
attributes in the database. The standard ways to keep the password out of the URL
(PGPASSWORD, a pgpass file, ``${VAR}``) are checked to work.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import make_tiny_sweep
from pg_private import private_pg  # noqa: F401 - fixture
from sweep_helpers import REPO, TRADETUNE, cli_env, write_config

pytestmark = pytest.mark.slow
STUDY = "secret"


def _run(args: list[str], results: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*TRADETUNE, *args], cwd=REPO, env={**cli_env(results), **env},
                          capture_output=True, text=True, timeout=600)


def _files_holding(secret: bytes, *roots: Path) -> list[str]:
    found = []
    for root in roots:
        for path in [root] if root.is_file() else root.rglob("*"):
            try:
                if path.is_file() and not path.is_symlink() and secret in path.read_bytes():
                    found.append(str(path))
            except OSError:  # sockets, vanished temp files
                continue
    return found


def _ray_sessions(output: str) -> list[Path]:
    names = set(re.findall(r"(session_\d{4}-\d\d-\d\d_[\d_-]+\d)", output))
    return [Path("/tmp/ray") / name for name in sorted(names)]


@pytest.fixture(scope="module")
def swept(private_pg, tmp_path_factory):  # noqa: F811 - fixture argument
    """A finished 1-trial sweep with the password in the storage URL of the config file and
    of the command line, then resume, best, status, export and evaluate the same way."""
    root = tmp_path_factory.mktemp("secrets")
    results, url = root / "results", private_pg.url()
    config = make_tiny_sweep(**{"study": STUDY, "search.num_samples": 1,
                                "training.max_iterations": 2})
    config["storage"] = url
    path = write_config(root / "sweep.yaml", config)  # the user's own file: not searched
    runs = [_run(["launch", str(path), "--storage", url], results)]
    runs.append(_run(["resume", "--study", STUDY, "--storage", url], results))
    for args in (["best", "--study", STUDY, "-f", "json"], ["status", "--study", STUDY],
                 ["status", "-f", "json"], ["evaluate", "--study", STUDY, "-f", "json"],
                 ["export", "--study", STUDY, "--out", str(root / "export")]):
        runs.append(_run([*args, "--storage", url], results))
    return {"root": root, "results": results, "runs": runs, "url": url, "pg": private_pg}


def test_the_sweep_and_queries_ran(swept):
    for done in swept["runs"]:
        assert done.returncode == 0, done.args[2:4] + [done.stdout[-2000:], done.stderr[-2000:]]
    assert "sweep finished: 1 complete" in swept["runs"][0].stdout
    assert "already finished" in swept["runs"][1].stdout
    assert (swept["root"] / "export" / "checkpoint").is_dir()
    assert list(swept["results"].glob(f"{STUDY}/run-*/tuner.pkl"))


def test_no_byte_the_run_wrote_holds_the_password(swept):
    secret = swept["pg"].password
    output = "".join(r.stdout + r.stderr for r in swept["runs"])
    assert secret not in output
    assert "tradetune:***@" in output  # the URL is shown, redacted
    sessions = _ray_sessions(output)
    assert sessions and all(s.is_dir() for s in sessions), sessions
    pickles = [p.name for p in swept["results"].rglob("*.pkl")]
    assert "tuner.pkl" in pickles and any(p.startswith("searcher-state") for p in pickles)
    leaks = _files_holding(secret.encode(), swept["results"], swept["root"] / "export",
                           *sessions)
    assert not leaks
    # The search itself works: the user's own config file does hold it.
    assert _files_holding(secret.encode(), swept["root"] / "sweep.yaml")


def test_the_study_attributes_hold_no_password(swept):
    import optuna

    from search.study.storage import open_storage

    storage = open_storage(swept["url"], read_only=True)
    study = optuna.load_study(study_name=STUDY, storage=storage)
    attrs = repr(study.user_attrs) + repr(storage.get_study_system_attrs(study._study_id))
    attrs += "".join(repr(t.user_attrs) + repr(t.system_attrs) for t in study.trials)
    assert swept["pg"].password not in attrs
    assert study.user_attrs["tradetune_config"]["storage"] == swept["pg"].url("***")


@pytest.mark.parametrize("way", ["PGPASSWORD", "pgpass file in HOME", "PGPASSFILE", "${VAR}"])
def test_standard_ways_to_pass_the_password_work(way, swept, tmp_path):
    pg = swept["pg"]
    url, env = pg.url(None), {}
    if way == "PGPASSWORD":
        env["PGPASSWORD"] = pg.password
    elif way == "${VAR}":
        url, env["TT_PG_SECRET"] = pg.url("${TT_PG_SECRET}"), pg.password
    else:
        passfile = tmp_path / (".pgpass" if "HOME" in way else "passfile")
        passfile.write_text(f"127.0.0.1:{pg.port}:{pg.database}:{pg.user}:{pg.password}\n")
        passfile.chmod(0o600)
        env["HOME" if "HOME" in way else "PGPASSFILE"] = str(tmp_path)
        if way == "PGPASSFILE":
            env["PGPASSFILE"] = str(passfile)
    without = _run(["status", "--study", STUDY, "--storage", url], swept["results"])
    assert without.returncode == 1 or way == "${VAR}"
    done = _run(["status", "--study", STUDY, "--storage", url], swept["results"], **env)
    assert done.returncode == 0, done.stderr
    assert f"{STUDY}: COMPLETE 1" in done.stdout
    resumed = _run(["resume", "--study", STUDY, "--storage", url], swept["results"], **env)
    assert resumed.returncode == 0 and "already finished" in resumed.stdout, resumed.stderr
    assert pg.password not in done.stdout + done.stderr + resumed.stdout + resumed.stderr
