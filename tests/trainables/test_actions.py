"""Action sets (``env.actions``): exposure levels, their meanings and the one-line refusals."""
from __future__ import annotations

import pytest

from trainables.actions import ACTION_SETS, action_levels, action_meanings, describe_actions
from trainables.errors import ConfigError


def test_named_action_sets_are_their_exposure_levels_ascending():
    assert ACTION_SETS == ("long_only", "long_short")
    assert action_levels("long_only") == (0.0, 1.0)
    assert action_levels("long_short") == (-1.0, 0.0, 1.0)


def test_sizes_are_sorted_floats_given_as_a_mapping_or_a_bare_list():
    assert action_levels({"sizes": [1, -0.5, 0, 0.5, -1]}) == (-1.0, -0.5, 0.0, 0.5, 1.0)
    assert action_levels([0, 0.25]) == (0.0, 0.25)
    assert all(isinstance(level, float) for level in action_levels({"sizes": [1, 0]}))


@pytest.mark.parametrize("bad, message", [
    ("long_shrot", r"unknown env.actions 'long_shrot'; did you mean 'long_short'\?"),
    ("martingale", r"unknown env.actions 'martingale'; choose one of"),
    ({"sizes": []}, "at least two"),
    ({"sizes": [0]}, "at least two"),
    ({"sizes": [0, "half"]}, "must be numbers"),
    ({"sizes": [0, True]}, "must be numbers"),
    ({"sizes": [0, float("nan")]}, "must be numbers"),
    ({"sizes": [0, 2]}, r"outside \[-1, 1\]"),
    ({"sizes": [0, -1.5]}, r"outside \[-1, 1\]"),
    ({"sizes": [0, 1, 1.0]}, r"lists \[1.0\] more than once"),
    ({"sizes": [-1, 1]}, "must include 0"),
    ({"size": [0, 1]}, "takes one key, sizes"),
    ({"sizes": 1}, "must be a list"),
    (3, "must be a list"),
])
def test_bad_action_sets_are_refused_in_one_line(bad, message):
    with pytest.raises(ConfigError, match=message) as caught:
        action_levels(bad)
    assert "\n" not in str(caught.value)


def test_action_meanings_and_labels():
    assert action_meanings(action_levels("long_only")) == ["cash", "long 100%"]
    assert action_meanings((-1.0, -0.5, 0.0, 0.25, 1.0)) == [
        "short 100%", "short 50%", "cash", "long 25%", "long 100%"]
    assert describe_actions("long_short") == "long_short"
    assert describe_actions({"sizes": [0.5, 0, -0.5]}) == "sizes[-0.5,0,0.5]"


def test_actions_module_imports_nothing_heavy():
    import subprocess
    import sys

    code = ("import sys, trainables.actions; "
            "assert not {'numpy', 'tensortrade'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("size", [1e-12, -0.005])
def test_a_size_too_small_to_trade_is_refused(size):
    """A level of 1e-12 was accepted and shown as 'long 1e-10%': it trades nothing but fees."""
    from trainables.actions import action_levels
    from trainables.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"env.actions size {size} is below 0.01"):
        action_levels({"sizes": [0, size, 1]})
