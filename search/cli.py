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
  TRADETUNE_RAY_CONNECT_S
                      how long launch/resume wait for the Ray cluster at --address to
                      answer before they stop with one line (default 10)
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
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--onnx", action="store_true",
                   help="also write the greedy policy network as policy.onnx")

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
    p.add_argument("--out", required=True, metavar="DIR")

    p = add("data", "check a market CSV and show rows, dates, interval, splits and features")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--splits", metavar="YAML", help="splits as YAML, e.g. "
                   "'{train: 0.7, val: 0.15, test: 0.15}' (default 0.7/0.15/0.15)")
    p.add_argument("--walk-forward", metavar="YAML", help="also show walk-forward folds, e.g. "
                   "'{folds: 3, mode: expanding}' (as data.walk_forward in a sweep config)")
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
        print(f"trial {row['number']}: value {_number(row['value'])}  (val sharpe "
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


def _table_status(data: Any) -> None:
    rows = data if isinstance(data, list) else [data]
    if not rows:
        print("no studies yet")
    for row in rows:
        counts = ", ".join(f"{k} {v}" for k, v in row["counts"].items())
        print(f"{row['study']}: {counts}; best value {_number(row['best_value'])}"
              + (f" (trial {row['best_trial']})" if row["best_trial"] is not None else ""))


def _table_metrics(data: dict) -> None:
    for key, value in data.items():
        print(f"{key:>20}: {_number(value)}")


def _table_compare(data: dict) -> None:
    print(f"{'trial':>5} {'value':>8} {'val Sharpe':>10} {'test Sharpe':>11} {'val P&L%':>9} "
          f"{'test P&L%':>9} {'test B&H%':>9}")
    for row in data["trials"]:
        print(f"{row['trial']:>5} {_number(row['value']):>8} {_number(row['val_sharpe']):>10} "
              f"{_number(row['test_sharpe']):>11} {_number(row['val_pnl_pct']):>9} "
              f"{_number(row['test_pnl_pct']):>9} {_number(row['test_buy_and_hold_pct']):>9}")
    print(f"overfitting check: {data['overfitting']['verdict']}")


def _table_data(info: dict) -> None:
    print(f"source:   {info['source']}")
    print(f"rows:     {info['rows']} ({info['first']} .. {info['last']}, every {info['interval']})")
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
        from search.config import _parse_value
        from trainables.data import describe, prepare_market

        splits = _parse_value(args.splits) if args.splits else None
        folds = _parse_value(args.walk_forward) if args.walk_forward else None
        info = describe(prepare_market({"path": args.file, "splits": splits,
                                        "walk_forward": folds}))
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
        result = query.export(url, args.study, args.trial, Path(args.out))
        if args.onnx:
            from search.onnx_export import export_onnx

            result["onnx"] = export_onnx(Path(args.out))
        print(f"exported trial {result['trial']} of {result['study']} to {result['out']}: "
              + ", ".join(result["files"]) + (", policy.onnx" if args.onnx else ""))
    elif args.command == "report":
        from search.report import write_report

        index = write_report(url, args.study, Path(args.out))
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
        return run(args)
    except argparse.ArgumentTypeError as exc:
        parser.exit(2, f"tradetune {args.command}: error: {exc}\n")
    except KeyboardInterrupt as exc:  # a sweep's own stops print more and exit 128 + signal
        print("interrupted", file=sys.stderr)
        return getattr(exc, "exit_code", 130)
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
