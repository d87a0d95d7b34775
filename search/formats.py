"""How numbers look wherever TradeTune shows them to people (terminal tables, the report, the
model card): four significant digits, so a table of scores stays readable."""
from __future__ import annotations

from typing import Any


def number(value: Any, missing: str = "-") -> str:
    """``value`` as shown to people: floats to 4 significant digits, None as ``missing``."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return missing if value is None else str(value)


def market_terms(env: dict[str, Any]) -> str:
    """A study's fixed trading terms in one line, for the report and the model card: the action
    set with its exposure levels, then the frictions, e.g. ``actions long_short (short 100%,
    cash, long 100%); commission 0.001 per unit traded; slippage 5 bps + 0.1 x volatility of
    24 bars; borrow 0.05 a year on shorts``. ``env`` holds completed env settings."""
    from trainables.actions import action_levels, action_meanings, describe_actions

    levels = action_levels(env["actions"])
    slippage = env["slippage"]
    parts = [f"actions {describe_actions(env['actions'])} "
             f"({', '.join(action_meanings(levels))})",
             f"commission {env['commission']:g} per unit traded"]
    if slippage["bps"] or slippage["vol_mult"]:
        parts.append(f"slippage {slippage['bps']:g} bps + {slippage['vol_mult']:g} x "
                     f"volatility of {slippage['vol_window']} bars")
    else:
        parts.append("no slippage")
    if min(levels) < 0:
        parts.append(f"borrow {env['borrow_rate']:g} a year on shorts")
    return "; ".join(parts)
