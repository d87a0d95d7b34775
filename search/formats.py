"""How numbers look wherever TradeTune shows them to people (terminal tables, the report, the
model card): four significant digits, so a table of scores stays readable."""
from __future__ import annotations

from typing import Any


def number(value: Any, missing: str = "-") -> str:
    """``value`` as shown to people: floats to 4 significant digits, None as ``missing``."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return missing if value is None else str(value)

