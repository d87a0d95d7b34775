"""Atomic trial claims: drivers claiming at the same moment take exactly the study's budget, on
real SQLite and PostgreSQL studies. Each thread stands for one driver: its own storage
connection, study object and searcher."""
from __future__ import annotations

import threading
import uuid

import optuna
import pytest
from optuna.trial import TrialState

from search.study.claims import claim_lock
from search.sweep.searcher import COUNTED_STATES, StudySearcher
from search.study.storage import open_storage
from search.study.studies import create_study, data_fingerprint, load_study
from spaces import get_space

PG = "postgresql://postgres@127.0.0.1:5432/test"
DRIVERS = 8


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_study(request, tmp_path, tiny_sweep):
    """Factory: create a study with budget ``num_samples`` and return (url, name, space)."""
    url = f"sqlite:///{tmp_path / 'claims.db'}" if request.param == "sqlite" else PG
    created: list[str] = []

    def make(num_samples: int) -> tuple[str, str, object]:
        name = f"claims-{uuid.uuid4().hex[:8]}"
        config = tiny_sweep(**{"study": name, "search.num_samples": num_samples})
        space = get_space("ppo", config["search"]["space_overrides"])
        create_study(open_storage(url), config, space, data_fingerprint(config["data"]), "test")
        created.append(name)
        return url, name, space

    yield make
    for name in created:
        optuna.delete_study(study_name=name, storage=url)


def _driver(url: str, name: str, space, budget: int, driver: str) -> StudySearcher:
    study = load_study(open_storage(url), name)
    return StudySearcher(space, study, optuna.samplers.RandomSampler(seed=len(driver)), budget,
                         42, driver)


def _counted(url: str, name: str) -> list:
    states = tuple(TrialState[s] for s in COUNTED_STATES)
    return load_study(open_storage(url), name).get_trials(deepcopy=False, states=states)


def test_drivers_claiming_at_once_take_exactly_the_budget(shared_study):
    budget = 5
    url, name, space = shared_study(budget)
    searchers = [_driver(url, name, space, budget, f"drv{i}") for i in range(DRIVERS)]
    start = threading.Barrier(DRIVERS)
    claimed: list[list[int]] = [[] for _ in range(DRIVERS)]
    errors: list[BaseException] = []

    def run(index: int) -> None:
        searcher = searchers[index]
        try:
            start.wait()
            for attempt in range(budget + 1):  # keep claiming, as a driver does, until refused
                config = searcher.suggest(f"drv{index}-{attempt}")
                if config == "FINISHED":
                    return
                claimed[index].append(searcher._ot_trials[f"drv{index}-{attempt}"].number)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(DRIVERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    numbers = [n for per_driver in claimed for n in per_driver]
    assert len(numbers) == budget, claimed
    assert len(set(numbers)) == budget
    trials = _counted(url, name)
    assert sorted(t.number for t in trials) == sorted(numbers)
    for trial in trials:  # every claimed trial carries its driver and Tune id
        driver = trial.user_attrs["driver"]
        assert trial.number in claimed[int(driver[3:])]
        assert trial.user_attrs["tune_trial_id"].startswith(driver + "-")


def test_a_failed_trial_frees_its_place_in_the_budget(shared_study):
    url, name, space = shared_study(2)
    searcher = _driver(url, name, space, 2, "drv")
    assert isinstance(searcher.suggest("a"), dict) and isinstance(searcher.suggest("b"), dict)
    assert searcher.suggest("c") == "FINISHED"
    searcher.on_trial_complete("a", None, error=True)
    searcher.fail("a", "RuntimeError: boom")
    other = _driver(url, name, space, 2, "other")
    assert isinstance(other.suggest("d"), dict)  # the FAIL trial is re-run, as resume does
    assert other.suggest("e") == "FINISHED" and searcher.suggest("f") == "FINISHED"
    assert len(_counted(url, name)) == 2


def test_the_claim_lock_excludes_other_holders(shared_study):
    url, name, _ = shared_study(1)
    first = load_study(open_storage(url), name)
    second = load_study(open_storage(url), name)
    inside = threading.Event()
    with claim_lock(first):
        waiter = threading.Thread(target=lambda: _enter(second, inside))
        waiter.start()
        waiter.join(timeout=1.0)
        assert waiter.is_alive() and not inside.is_set()  # blocked while the lock is held
    waiter.join(timeout=30)
    assert inside.is_set()


def _enter(study, inside: threading.Event) -> None:
    with claim_lock(study):
        inside.set()
