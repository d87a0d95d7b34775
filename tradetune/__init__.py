"""TradeTune as a Python library: the documented import for programs and notebooks.

    import tradetune

    result = tradetune.launch("examples/quickstart.yaml", {"search.num_samples": 4},
                              progress=print)
    study = tradetune.open_study(result.study)
    study.best(3)                  # the 3 best trials, as dicts
    study.evaluate(split="test")   # the best trial's kept checkpoint on the test split

Every name here is ``search.api``'s, unchanged (its docstring states the rules each function
keeps: plain data back, one-line ``UserError``s, nothing printed). Importing it imports
neither ray nor torch.
"""
from search import api as _api
from search.api import *  # noqa: F403 - the facade is the API, name for name

__all__ = list(_api.__all__)
