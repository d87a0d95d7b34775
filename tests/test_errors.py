"""The error family: one root, and one "did you mean" helper."""
from __future__ import annotations

import inspect

from search import errors as search_errors
from search.errors import PromotionError
from trainables import errors
from trainables.errors import TradeTuneError, UserError, did_you_mean


def test_every_error_class_derives_from_the_root_and_user_errors_from_user_error():
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass)
               if issubclass(c, BaseException)]
    assert len(classes) >= 9
    for cls in [*classes, PromotionError]:
        assert issubclass(cls, TradeTuneError), cls
        assert cls is TradeTuneError or issubclass(cls, UserError), cls
    # callers catch these as ValueError (a bad value), as they did before the family existed
    for cls in (errors.ConfigError, errors.DataError, errors.SpaceError):
        assert issubclass(cls, ValueError)
    # the service's name for the family is the same classes, not copies
    assert search_errors.DataError is errors.DataError
    assert search_errors.UserError is errors.UserError


def test_errors_module_imports_nothing_heavy():
    source = inspect.getsource(errors)
    imports = {line.split()[1] for line in source.splitlines()
               if line.startswith(("import ", "from "))}
    assert imports <= {"__future__", "difflib", "collections.abc", "re"}


def test_did_you_mean_names_the_closest_choice_or_nothing():
    assert did_you_mean("trian", ["train", "val", "test"]) == "; did you mean 'train'?"
    assert did_you_mean("zzz", ["train", "val"]) == ""
    assert did_you_mean("vall", ("train", "val"), template=" (did you mean {}?)") == \
        " (did you mean 'val'?)"
    assert did_you_mean("unti", ["unit", "units", "other"], n=3, cutoff=0.5) == \
        "; did you mean 'unit', 'units'?"
    assert did_you_mean(3, [1, 3]) == "; did you mean '3'?"
    assert did_you_mean("max_iteration", {"max_iterations": 1},
                        spell=lambda k: repr(f"training.{k}")) == \
        "; did you mean 'training.max_iterations'?"
