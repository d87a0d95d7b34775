"""How TradeTune's figures look wherever people read them (terminal tables, the report, the
model card): numbers to four significant digits, so a table of scores stays readable, and the
one-line descriptions of a study's market and of its test-split looks."""
from __future__ import annotations

from typing import Any


def number(value: Any, missing: str = "-") -> str:
    """``value`` as shown to people: floats to 4 significant digits, None as ``missing``."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return missing if value is None else str(value)


def describe_market(market: dict[str, Any]) -> str:
    """One line for people: ``actions long_short (short 100%, cash, long 100%), commission
    0.1%, slippage 2 bps, borrow 5%/year``."""
    from trainables.actions import action_meanings, describe_actions

    slippage = market["slippage"]
    slipped = [f"{number(slippage['bps'])} bps"] if slippage["bps"] else []
    if slippage["vol_mult"]:
        slipped.append(f"{number(slippage['vol_mult'])} x {slippage['vol_window']}-bar "
                       "volatility")
    shorts = min(market["levels"]) < 0
    return (f"actions {describe_actions(market['actions'])} "
            f"({', '.join(action_meanings(market['levels']))}), commission "
            f"{number(market['commission'] * 100)}%, slippage "
            f"{' + '.join(slipped) or 'none'}"
            + (f", borrow {number(market['borrow_rate'] * 100)}%/year" if shorts else ""))


def describe_test_looks(test_looks: dict[str, Any]) -> str:
    """One line for tables and the report, e.g. "looked at 3 times (last 2026-...Z by
    `evaluate --top 5`, trials 0, 3, 4)"."""
    count, last = test_looks["count"], test_looks["last"]
    if not count:
        return "not looked at yet"
    times = "once" if count == 1 else f"{count} times"
    trials = ", ".join(str(n) for n in last.get("trials", []))
    return (f"looked at {times} (last {last.get('at')} by `{last.get('command')}`, "
            f"trial{'s' if len(last.get('trials', [])) != 1 else ''} {trials})")
