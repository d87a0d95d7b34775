"""The ``tradetune`` command: one parser per subcommand, ``main(argv) -> int``.

User errors print one line on stderr and exit 1 (usage errors exit 2); ``--debug`` shows the
traceback instead. Query commands (best, status, export, data) never import ray or torch.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

EPILOG = """environment:
  TRADETUNE_RESULTS   results directory (default ~/tradetune_results): experiments,
                      checkpoints and the default SQLite study database
  TRADETUNE_STORAGE   study storage URL (default sqlite:///$TRADETUNE_RESULTS/tradetune.db),
                      e.g. postgresql://user@host:5432/db; passwords via PGPASSWORD,
                      ~/.pgpass or ${VAR} inside the URL
  TRADETUNE_STORAGE_RETRY_S
                      how long a sweep retries a study storage that stopped answering
                      before it stops cleanly (default 300; then `resume` continues)
  RAY_ADDRESS         run trials on an existing Ray cluster (same as --address)
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tradetune", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Hyperparameter sweeps for RLlib trading agents on TensorTrade, with the "
                    "study kept in SQL so sweeps resume after any crash.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks on errors")
        return p

    def storage(p: argparse.ArgumentParser) -> None:
        p.add_argument("--storage", metavar="URL",
                       help="study storage URL (default: $TRADETUNE_STORAGE or the SQLite file "
                            "in the results directory)")

    def fmt(p: argparse.ArgumentParser) -> None:
        p.add_argument("-f", "--format", choices=("table", "json"), default="table")

    p = add("launch", "start a new sweep from a YAML config")
    p.add_argument("config", metavar="CONFIG.yaml", help="sweep config (see examples/)")
    p.add_argument("--study", help="study name (overrides 'study:' in the config)")
    storage(p)
    p.add_argument("--num-samples", type=int, metavar="N", help="number of trials")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set training.max_iterations=10 "
                        "(value parsed as YAML; repeatable)")
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS or local)")

    p = add("resume", "continue a stopped or crashed sweep; runs only the remaining trials")
    p.add_argument("--study", required=True)
    storage(p)
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS or local)")

    p = add("best", "the best trials of a study, with their settings and checkpoints")
    p.add_argument("--study", required=True)
    storage(p)
    p.add_argument("--top", type=int, default=5, metavar="K", help="how many (default 5)")
    fmt(p)

    p = add("status", "trial counts and best value of one study, or of every study")
    p.add_argument("--study")
    storage(p)
    fmt(p)

    p = add("export", "write a trial's RLlib config, sweep config and checkpoint to a folder")
    p.add_argument("--study", required=True)
    storage(p)
    p.add_argument("--trial", type=int, metavar="N",
                   help="trial number (default: the best; in a multi-objective study, the "
                        "Pareto trial with the highest first objective)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="a new or empty folder, or an earlier export of the same study")
    p.add_argument("--onnx", action="store_true",
                   help="also write the greedy policy network as policy.onnx")
    p.add_argument("--force", action="store_true",
                   help="write into a folder that holds other files, replacing only the names "
                        "an export writes")

    p = add("evaluate", "score a trial's kept checkpoint on the test (or val) split vs "
                        "buy-and-hold")
    p.add_argument("--study", required=True)
    storage(p)
    p.add_argument("--trial", type=int, metavar="N",
                   help="trial number (default: the best; in a multi-objective study, the "
                        "Pareto trial with the highest first objective)")
    p.add_argument("--split", choices=("val", "test"), default="test")
    p.add_argument("--top", type=int, metavar="K",
                   help="instead: validation vs test side by side for the K best trials, with "
                        "the overfitting check")
    fmt(p)

    p = add("report", "write an HTML report with plots of a study (works while it runs)")
    p.add_argument("--study", required=True)
    storage(p)
    p.add_argument("--out", required=True, metavar="DIR",
                   help="a new or empty folder, or an earlier report")
    p.add_argument("--force", action="store_true",
                   help="write into a folder that holds other files, replacing only index.html "
                        "and the report's images")

    p = add("data", "check a market CSV and show rows, dates, interval, splits and features")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--splits", metavar="YAML", help="splits as YAML, e.g. "
                   "'{train: 0.7, val: 0.15, test: 0.15}' (default 0.7/0.15/0.15)")
    p.add_argument("--walk-forward", metavar="YAML", help="also show walk-forward folds, e.g. "
                   "'{folds: 3, mode: expanding}' (as data.walk_forward in a sweep config)")
    p.add_argument("--date-column", metavar="NAME",
                   help="the column holding the bar times (as data.date_column)")
    p.add_argument("--sep", metavar="SEP", help="field separator: , ; | or tab (as data.sep; "
                   "default: detected)")
    p.add_argument("--decimal", metavar="MARK", help="decimal mark: . or , (as data.decimal)")
    fmt(p)
    return parser


def _print(data: Any, fmt: str, table) -> None:
    if fmt == "json":
        print(json.dumps(data, indent=2, default=str))
    else:
        table(data)


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _numbers(values: list | None) -> str:
    return "[" + ", ".join(_number(v) for v in values or []) + "]"


def _table_best(rows: list[dict]) -> None:
    if not rows:
        print("no COMPLETE trials yet")
        return
    if rows[0].get("pareto"):
        print(f"Pareto front ({len(rows)} shown, highest {next(iter(rows[0]['objectives']))} "
              "first): no trial below is beaten on every objective by another trial")
    for row in rows:
        m = row["metrics"]
        print(f"trial {row['number']}: value {_number(row['value'])}{_never_trades(row)}"
              f"  (val sharpe "
              f"{_number(m.get('sharpe'))}, P&L {_number(m.get('pnl_pct'))}%, buy&hold "
              f"{_number(m.get('buy_and_hold_pct'))}%, max drawdown "
              f"{_number(m.get('max_drawdown'))}, trades {_number(m.get('trades'))}; "
              f"stopped by {row['stop_reason']})")
        if row.get("objectives"):
            print("  objectives: " + ", ".join(f"{name} {_number(value)}"
                                               for name, value in row["objectives"].items()))
        print("  params: " + ", ".join(f"{k}={_number(v)}" for k, v in row["params"].items()))
        if m.get("run_scores"):
            print(f"  runs: per fold {_numbers(m.get('fold_scores'))}, per seed "
                  f"{_numbers(m.get('seed_scores'))}, spread (std) {_number(m.get('score_std'))}"
                  f"; kept checkpoint scored {_number(m.get('checkpoint_score'))}")
        print(f"  checkpoint: {row['checkpoint'] or 'missing'}")
    if "overfitting" in rows[0]:
        print(f"overfitting check: {rows[0]['overfitting']['verdict']}")
    if "study_test_looks" in rows[0]:
        print(f"test split: {_looks(rows[0]['study_test_looks'])}")


NEVER_TRADES = "NEVER TRADES on validation (stays in cash)"


def _never_trades(row: dict) -> str:
    """A marker for a trial whose kept checkpoint made no trade on validation: its value is
    the score of staying in cash, not of a strategy."""
    return f" [{NEVER_TRADES}]" if row.get("never_trades") else ""


def _looks(test_looks: dict) -> str:
    from search.audit import describe

    return describe(test_looks)


def _table_status(data: Any) -> None:
    rows = data if isinstance(data, list) else [data]
    if not rows:
        print("no studies yet")
    for row in rows:
        counts = ", ".join(f"{k} {v}" for k, v in row["counts"].items())
        print(f"{row['study']}: {counts}; best value {_number(row['best_value'])}"
              + (f" (trial {row['best_trial']}"
                 + (f", {NEVER_TRADES}" if row.get("best_never_trades") else "") + ")"
                 if row["best_trial"] is not None else "")
              + (f"; test split {_looks(row['test_looks'])}" if "test_looks" in row else ""))


def _table_metrics(data: dict) -> None:
    for key, value in data.items():
        print(f"{key:>20}: {_number(value)}")


def _table_compare(data: dict) -> None:
    print(f"{'trial':>5} {'value':>8} {'val Sharpe':>10} {'test Sharpe':>11} {'val P&L%':>9} "
          f"{'test P&L%':>9} {'test B&H%':>9}  note")
    for row in data["trials"]:
        print(f"{row['trial']:>5} {_number(row['value']):>8} {_number(row['val_sharpe']):>10} "
              f"{_number(row['test_sharpe']):>11} {_number(row['val_pnl_pct']):>9} "
              f"{_number(row['test_pnl_pct']):>9} {_number(row['test_buy_and_hold_pct']):>9}"
              + (f"  {NEVER_TRADES}" if row.get("never_trades") else ""))
    print(f"overfitting check: {data['overfitting']['verdict']}")
    if "study_test_looks" in data:
        print(f"test split: {_looks(data['study_test_looks'])} (this look included)")


def _table_data(info: dict) -> None:
    read = info.get("file") or {}
    how = ""
    if read:
        sep = {"\t": "tab"}.get(read["separator"], repr(read["separator"]))
        how = (f" ({read['layout']}; dates from {read['date_column']!r}; separator {sep}"
               + (f"; decimal {read['decimal']!r}" if read["decimal"] != "." else "") + ")")
    print(f"source:   {info['source']}{how}")
    print(f"rows:     {info['rows']} ({info['first']} .. {info['last']}, every {info['interval']}, "
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


def run(args: argparse.Namespace) -> int:
    import optuna

    from search import storage as storage_mod

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    if args.command == "data":
        from search.config import parse_value
        from trainables.data import describe, prepare_market

        splits = parse_value(args.splits, "data.splits", "--splits") if args.splits else None
        folds = (parse_value(args.walk_forward, "data.walk_forward", "--walk-forward")
                 if args.walk_forward else None)
        reading = {"date_column": args.date_column, "sep": args.sep, "decimal": args.decimal}
        info = describe(prepare_market({"path": args.file, "splits": splits,
                                        "walk_forward": folds,
                                        **{k: v for k, v in reading.items() if v is not None}}))
        _print(info, args.format, _table_data)
        return 0
    if args.command == "launch":
        from search.config import load_config
        from search.tuner import launch

        sets = list(args.set)
        if args.num_samples is not None:
            sets.append(f"search.num_samples={args.num_samples}")
        config = load_config(args.config, sets, study=args.study)
        return launch(config, args.storage, args.address, command=args.command_line)
    if args.command == "resume":
        from search.config import check_study_name
        from search.tuner import resume

        return resume(check_study_name(args.study), args.storage, args.address)

    from search import query
    from search.config import check_study_name

    url = storage_mod.resolve_url(args.storage)
    if getattr(args, "study", None) is not None:
        check_study_name(args.study)
    if args.command == "best":
        if args.top < 1:
            raise argparse.ArgumentTypeError(f"--top must be at least 1, got {args.top}")
        _print(query.best(url, args.study, args.top), args.format, _table_best)
    elif args.command == "status":
        _print(query.status(url, args.study), args.format, _table_status)
    elif args.command == "export":
        result = query.export(url, args.study, args.trial, Path(args.out), onnx=args.onnx,
                              force=args.force)
        print(f"exported trial {result['trial']} of {result['study']} to {result['out']}: "
              + ", ".join(result["files"]))
    elif args.command == "report":
        from search.report import write_report

        index = write_report(url, args.study, Path(args.out), force=args.force)
        print(f"report of {args.study} written to {index}")
    elif args.command == "evaluate" and args.top is not None:
        if args.top < 1:
            raise argparse.ArgumentTypeError(f"--top must be at least 1, got {args.top}")
        if args.trial is not None:
            raise argparse.ArgumentTypeError("give either --trial or --top, not both")
        _print(query.compare_top(url, args.study, args.top), args.format, _table_compare)
    elif args.command == "evaluate":
        _print(query.evaluate_trial(url, args.study, args.trial, args.split), args.format,
               _table_metrics)
    return 0


def _check_command(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """An unknown subcommand is a usage error that names the closest command."""
    import difflib

    word = next((a for a in argv if not a.startswith("-")), None)
    commands = next(a.choices for a in parser._actions
                    if isinstance(a, argparse._SubParsersAction))
    if word is not None and word not in commands:
        close = difflib.get_close_matches(word, list(commands), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        parser.error(f"unknown command {word!r}{hint} (commands: {', '.join(commands)})")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tradetune`` console script."""
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    _check_command(parser, argv)
    args = parser.parse_args(argv)
    args.command_line = "tradetune " + " ".join(argv)
    from search.errors import UserError

    try:
        code = run(args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        # `tradetune best | head`: the reader has all it wanted; stop quietly, as git does.
        try:  # and no second error when Python flushes stdout on exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 141  # what a shell reports for a process ended by SIGPIPE
    except argparse.ArgumentTypeError as exc:
        parser.exit(2, f"tradetune {args.command}: error: {exc}\n")
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        # trainables.data (and pandas) load only when needed; no DataError without them.
        data = sys.modules.get("trainables.data")
        if args.debug or not (isinstance(exc, UserError)
                              or (data is not None and isinstance(exc, data.DataError))):
            raise
        from search.storage import redact

        message = " ".join(str(exc).split())
        print(f"tradetune {args.command}: error: {redact(message)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
