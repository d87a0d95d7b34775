"""Import tensortrade without TensorFlow: the step before any ``tensortrade`` import.

TradeTune uses tensortrade in two modules only: ``trainables/env.py`` (the env's exchange,
wallets and broker) and ``trainables/synthetic.py`` (its GBM price generator).
"""
from __future__ import annotations

import sys
import types


def import_tensortrade() -> None:
    """Import tensortrade without its TensorFlow agents.

    ``tensortrade/__init__`` imports ``tensortrade.agents``, which imports TensorFlow. TensorFlow
    is deliberately not installed (next to RLlib it makes torch segfault), so a placeholder module
    stands in for the deprecated agents package before the first import.
    """
    if "tensortrade.agents" not in sys.modules:
        sys.modules["tensortrade.agents"] = types.ModuleType("tensortrade.agents")
    import tensortrade  # noqa: F401
