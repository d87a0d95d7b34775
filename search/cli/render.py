"""How the ``tradetune`` commands show results: tables for people, JSON for programs."""
from __future__ import annotations

import json
import sys
from typing import Any

from search.formats import describe_market, describe_test_looks, number


def show(data: Any, fmt: str, table) -> None:
    """Print ``data`` as JSON (``--format json``) or as the command's ``table``."""
    if fmt == "json":
        print(json.dumps(data, indent=2, default=str))
    else:
        table(data)


def _numbers(values: list | None) -> str:
    return "[" + ", ".join(number(v) for v in values or []) + "]"


def table_best(rows: list[dict]) -> None:
    """`best`: one block per trial, then the study's checks."""
    if not rows:
        print("no COMPLETE trials yet")
        return
    if rows[0].get("pareto"):
        print(f"Pareto front ({len(rows)} shown, highest {next(iter(rows[0]['objectives']))} "
              "first): no trial below is beaten on every objective by another trial")
    for row in rows:
        m = row["metrics"]
        infeasible = (f" [INFEASIBLE: {'; '.join(row['constraints_broken'])}]"
                      if row.get("feasible") is False else "")
        print(f"trial {row['number']}: value {number(row['value'])}{_never_trades(row)}"
              f"{infeasible}"
              f"  (val sharpe "
              f"{number(m.get('sharpe'))}, P&L {number(m.get('pnl_pct'))}%, buy&hold "
              f"{number(m.get('buy_and_hold_pct'))}%, max drawdown "
              f"{number(m.get('max_drawdown'))}, trades {number(m.get('trades'))}; "
              f"stopped by {row['stop_reason']})")
        if row.get("objectives"):
            print("  objectives: " + ", ".join(f"{name} {number(value)}"
                                               for name, value in row["objectives"].items()))
        print("  params: " + ", ".join(f"{k}={number(v)}" for k, v in row["params"].items()))
        if m.get("run_scores"):
            print(f"  runs: per fold {_numbers(m.get('fold_scores'))}, per seed "
                  f"{_numbers(m.get('seed_scores'))}, spread (std) {number(m.get('score_std'))}"
                  f"; kept checkpoint scored {number(m.get('checkpoint_score'))}")
        print(f"  checkpoint: {row['checkpoint'] or 'missing'}")
        if row.get("promotion"):
            print("  fresh seeds: " + _promotion_line(row["promotion"]))
    if "verdict" in rows[0]:
        print(f"verdict (against buy-and-hold): {rows[0]['verdict']['text']}")
    if "overfitting" in rows[0]:
        print(f"overfitting check (against cash): {rows[0]['overfitting']['verdict']}")
    if "study_test_looks" in rows[0]:
        print(f"test split: {_looks(rows[0]['study_test_looks'])}")
    if "market" in rows[0]:
        print(f"market: {describe_market(rows[0]['market'])}")


NEVER_TRADES = "NEVER TRADES on validation (stays in cash)"


def _never_trades(row: dict) -> str:
    """A marker for a trial whose kept checkpoint is no strategy on validation (it made no
    trade, or another degenerate policy: ``search/results/degenerate.py``): its value is the
    score of staying in cash or of holding the asset, not of a strategy."""
    kind = _kind(row, "never_trades", "degenerate")
    return f" [{kind}]" if kind else ""


def _kind(row: dict, never: str, label: str) -> str:
    if row.get(never):
        return NEVER_TRADES
    return f"DEGENERATE on validation: {row[label]}" if row.get(label) else ""


def _looks(test_looks: dict) -> str:
    return describe_test_looks(test_looks)


def _promotion_line(p: dict) -> str:
    return (f"{p['verdict']}: {len(p['seeds'])} fresh seeds scored mean {number(p['mean'])} "
            f"(std {number(p['std'])}) against the study's {number(p['study_value'])} "
            f"({p['when']})")


def table_promote(p: dict) -> None:
    """`promote`: the verdict and the fresh seeds' scores."""
    print(f"trial {p['trial']} of {p['study']} on fresh seeds (validation {p['objective']}):")
    for seed, score in zip(p["seeds"], p["scores"], strict=True):
        print(f"  seed {seed}: {number(score)}")
    print(f"  mean {number(p['mean'])}, std {number(p['std'])}; study value "
          f"{number(p['study_value'])}"
          + (f" (its own seeds: {_numbers(p['study_run_scores']['seed_scores'])}, std "
             f"{number(p['study_run_scores']['score_std'])})" if p["study_run_scores"] else ""))
    if p.get("fresh_active_sharpe_per_bar") is not None:
        kinds = [k for k in p.get("fresh_degenerate") or [] if k]
        print(f"  against buy-and-hold (active Sharpe per bar): trial "
              f"{number(p['study_active_sharpe_per_bar'])}; fresh seeds "
              f"{_numbers(p['fresh_active_sharpe_per_bar'])}, mean "
              f"{number(p['mean_active_sharpe_per_bar'])}, std "
              f"{number(p['std_active_sharpe_per_bar'])}"
              + (f"; degenerate: {', '.join(kinds)}" if kinds else ""))
    print(f"verdict: {p['verdict']} (rule: {p['rule']})")
    if p.get("stress"):
        _stress_lines(p["stress"])
    if p["round"] > 1:
        print(f"note: promotion {p['round']} of this trial; repeating until it reproduces is "
              "selection on seeds again")


def table_status(data: Any) -> None:
    """`status`: trial counts and the best value, of one study or each."""
    rows = data if isinstance(data, list) else [data]
    if not rows:
        print("no studies yet")
    for row in rows:
        counts = ", ".join(f"{k} {v}" for k, v in row["counts"].items())
        print(f"{row['study']}: {counts}; best value {number(row['best_value'])}"
              + (f" (trial {row['best_trial']}"
                 + (f", {_kind(row, 'best_never_trades', 'best_degenerate')}"
                    if _kind(row, "best_never_trades", "best_degenerate") else "") + ")"
                 if row["best_trial"] is not None else "")
              + (f"; verdict {row['best_verdict']}" if row.get("best_verdict") else "")
              + (f"; test split {_looks(row['test_looks'])}" if "test_looks" in row else ""))


def table_metrics(data: dict) -> None:
    """`evaluate`: one trial's figures on a split (and, with --stress, under each stress)."""
    for key, value in data.items():
        if key != "stress":
            print(f"{key:>20}: {number(value)}")
    if data.get("stress"):
        _stress_lines(data["stress"])


def _stress_lines(stress: dict) -> None:
    print("cost stress (does the edge over buy-and-hold survive?):")
    for name, row in stress.items():
        print(f"  {name:<18} {'survives' if row['survives'] else 'LOST':<9} P&L "
              f"{number(row['pnl_pct'])}% vs buy&hold {number(row['buy_and_hold_pct'])}%, active "
              f"Sharpe per bar {number(row['active_sharpe_per_bar'])}, trades "
              f"{number(row['trades'])}")


def table_compare(data: dict) -> None:
    """`evaluate --top K`: validation against test, trial by trial."""
    print(f"{'trial':>5} {'value':>8} {'val Sharpe':>10} {'test Sharpe':>11} {'val P&L%':>9} "
          f"{'test P&L%':>9} {'test B&H%':>9}  note")
    for row in data["trials"]:
        print(f"{row['trial']:>5} {number(row['value']):>8} {number(row['val_sharpe']):>10} "
              f"{number(row['test_sharpe']):>11} {number(row['val_pnl_pct']):>9} "
              f"{number(row['test_pnl_pct']):>9} {number(row['test_buy_and_hold_pct']):>9}"
              + (f"  {_kind(row, 'never_trades', 'degenerate')}"
                 if _kind(row, "never_trades", "degenerate") else ""))
    print(f"overfitting check: {data['overfitting']['verdict']}")
    if "study_test_looks" in data:
        print(f"test split: {_looks(data['study_test_looks'])} (this look included)")


def table_studies(rows: list[dict]) -> None:
    """`studies`: one line per study."""
    if not rows:
        print("no studies yet")
        return
    header = ("study", "created", "algorithm", "complete", "running", "failed", "pruned",
              "best", "data")
    table = [header] + [(
        row["study"], (row["created"] or "-")[:16].replace("T", " "), row["algorithm"] or "-",
        *(str(row["counts"][s]) for s in ("COMPLETE", "RUNNING", "FAIL", "PRUNED")),
        number(row["best_value"]) + (f" (#{row['best_trial']})"
                                      if row["best_trial"] is not None else ""),
        row["data"] or "- (not created by tradetune)") for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header) - 1)]
    for line in table:
        print("  ".join(cell.ljust(width) if i < 3 or i == 7 else cell.rjust(width)
                        for i, (cell, width) in enumerate(zip(line, widths))) + "  " + line[-1])


def table_data(info: dict) -> None:
    """`data`: what a market file holds and how it splits."""
    read = info.get("file") or {}
    how = ""
    if read:
        sep = {"\t": "tab"}.get(read["separator"], repr(read["separator"]))
        how = (f" ({read['layout']}; dates from {read['date_column']!r}; separator {sep}"
               + (f"; decimal {read['decimal']!r}" if read["decimal"] != "." else "") + ")")
    print(f"source:   {info['source']}{how}")
    print(f"rows:     {info['rows']} ({info['first']} .. {info['last']}, "
          f"every {info['interval']}, "
          f"{round(info['periods_per_year']):,} bars a year)")
    print(f"warm-up:  {info['warmup_bars']} of the {info['file_rows']} bars only feed the "
          "features (dropped before the first split)")
    gaps = info["gaps"]
    if not gaps["count"]:
        print("gaps:     none" + (" (weekends are closed)" if gaps["weekends_closed"] else ""))
    else:
        big = gaps["largest"]
        print(f"gaps:     {gaps['count']} ({gaps['missing_bars']} bars missing"
              + ("; weekends are closed, not missing" if gaps["weekends_closed"] else "")
              + f"); the largest: {big['missing_bars']} bar(s) between {big['after']} and "
              f"{big['before']} (lines {big['after_line']} and {big['before_line']})")
    width = max(len(name) for name in ("train", *info["splits"]))
    for name, split in info["splits"].items():
        label = name.replace("_", " ") + ":"  # fold0_train -> "fold0 train:"
        print(f"{label:>{width + 1}}    {split['rows']} rows, {split['first']} .. {split['last']}")
    print(f"features: {', '.join(info['features'])}")
    for column in read.get("not_used") or []:
        print(f"note:     column {column!r} is not used: the env trades the 'close' column "
              "(adjusted prices rewrite history at each dividend or split)")


# Events a sweep, a promotion or a report says on stderr; the others go to stdout.
_STDERR_EVENTS = ("stopped", "promoting", "note")


def say(event: Any) -> None:
    """The ``progress`` callback of the commands: each event as the line it carries."""
    print(event.cli_message, file=sys.stderr if event.kind in _STDERR_EVENTS else sys.stdout,
          flush=True)
