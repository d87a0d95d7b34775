"""The ``tradetune`` command: one parser per subcommand, ``main(argv) -> int``. It parses the
arguments, calls the Python API (search/api.py) and formats what it returns.

User errors print one line on stderr and exit 1 (usage errors exit 2); ``--debug`` shows the
traceback instead. Query commands (best, status, export, data, studies, delete) never import ray
or torch. Paths on the command line are taken from the working directory the command runs in.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Sequence

from search.formats import number

EPILOG = """environment:
  TRADETUNE_RESULTS   results directory (default ~/tradetune_results): experiments,
                      checkpoints and the default SQLite study database
  TRADETUNE_STORAGE   study storage URL (default sqlite:///$TRADETUNE_RESULTS/tradetune.db):
                      sqlite:///PATH (a file; relative to the working directory) or
                      postgresql://user@host:5432/db (postgres:// also works); passwords
                      via PGPASSWORD, ~/.pgpass or ${VAR} inside the URL
  TRADETUNE_STORAGE_RETRY_S
                      how long a sweep retries a study storage that stopped answering
                      before it stops cleanly (default 300; then `resume` continues)
  RAY_ADDRESS         run trials on an existing Ray cluster (same as --address)
  TRADETUNE_RAY_CONNECT_S
                      how long launch/resume wait for the Ray cluster at --address to
                      answer before they stop with one line (default 10)
"""


class _Version(argparse.Action):
    """``--version``: read from the installed packages' metadata, so nothing heavy is imported."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        from search.versions import package_versions

        versions = package_versions()
        print(f"tradetune {versions.pop('tradetune')}")
        for name, version in versions.items():
            print(f"  {name} {version}" + (" (Tune, RLlib)" if name == "ray" else ""))
        sys.stdout.flush()
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tradetune", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Hyperparameter sweeps for RLlib trading agents on TensorTrade, with the "
                    "study kept in SQL so sweeps resume after any crash.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action=_Version, help="show the versions of TradeTune, "
                        "Python, Ray (Tune, RLlib), Optuna, torch and TensorTrade, and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks on errors")
        return p

    def storage(p: argparse.ArgumentParser) -> None:
        p.add_argument("--storage", metavar="URL",
                       help="study storage: sqlite:///PATH or postgresql://USER@HOST:PORT/DB "
                            "(default: $TRADETUNE_STORAGE, else the SQLite file "
                            "tradetune.db in the results directory)")

    def study(p: argparse.ArgumentParser, required: bool = True) -> None:
        p.add_argument("--study", required=required, metavar="NAME",
                       help="study name" + ("" if required else " (default: every study)"))

    def fmt(p: argparse.ArgumentParser) -> None:
        p.add_argument("-f", "--format", choices=("table", "json"), default="table",
                       help="output: table (default, for people) or json (for programs)")

    p = add("launch", "start a new sweep from a YAML config")
    p.add_argument("config", metavar="CONFIG.yaml", help="sweep config (see examples/; every "
                   "key and its default is in README.md, 'Sweep config')")
    p.add_argument("--study", metavar="NAME", help="study name (default: 'study:' in the "
                   "config); letters, digits, '.', '_', '-'")
    storage(p)
    p.add_argument("--num-samples", type=int, metavar="N", help="study-wide number of trials "
                   "(default: search.num_samples in the config, else 20)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set training.max_iterations=10 "
                        "(value parsed as YAML; repeatable)")
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS or local)")
    p.add_argument("--dry-run", action="store_true",
                   help="check the config, the data, the search space, the storage and the "
                        "results folder, print the effective config (YAML) and the splits, "
                        "and stop: nothing is created and Ray is not started")

    p = add("resume", "continue a stopped or crashed sweep; runs only the remaining trials")
    study(p)
    storage(p)
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS or local)")

    p = add("best", "the best trials of a study, with their settings and checkpoints")
    study(p)
    storage(p)
    p.add_argument("--top", type=int, default=5, metavar="K", help="how many (default 5)")
    fmt(p)

    p = add("status", "trial counts and best value of one study, or of every study")
    study(p, required=False)
    storage(p)
    fmt(p)

    p = add("export", "write a trial's RLlib config, sweep config and checkpoint to a folder")
    study(p)
    storage(p)
    p.add_argument("--trial", type=int, metavar="N",
                   help="trial number (default: the best; in a multi-objective study, the "
                        "Pareto trial with the highest first objective)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="a new or empty folder, or an earlier export of the same study "
                        "(relative to the working directory)")
    p.add_argument("--onnx", action="store_true",
                   help="also write the deployable bundle: policy.onnx (raw bars in), "
                        "policy_obs.onnx, policy.json and MODEL_CARD.md")
    p.add_argument("--force", action="store_true",
                   help="write into a folder that holds other files, replacing only the names "
                        "an export writes")

    p = add("evaluate", "score a trial's kept checkpoint on the test (or val) split vs "
                        "buy-and-hold")
    study(p)
    storage(p)
    p.add_argument("--trial", type=int, metavar="N",
                   help="trial number (default: the best; in a multi-objective study, the "
                        "Pareto trial with the highest first objective)")
    p.add_argument("--split", choices=("val", "test"), default="test",
                   help="test (default: the period nothing was selected on) or val")
    p.add_argument("--top", type=int, metavar="K",
                   help="instead: validation vs test side by side for the K best trials, with "
                        "the overfitting check")
    p.add_argument("--actions", metavar="FILE.csv",
                   help="also write one row per bar of the split: timestamp, close, action "
                        "(and its meaning, beyond long-only), position (the signed exposure "
                        "held), portfolio value, buy-and-hold value")
    fmt(p)

    p = add("promote", "retrain a trial's configuration on seeds the study never used and "
                       "say whether its score reproduces")
    study(p)
    storage(p)
    p.add_argument("--trial", type=int, metavar="N",
                   help="trial number (default: the best, as `evaluate` picks it)")
    p.add_argument("--seeds", type=int, required=True, metavar="K",
                   help="how many fresh seeds to train (1..100)")
    fmt(p)

    p = add("report", "write an HTML report with plots of a study (works while it runs)")
    study(p)
    storage(p)
    p.add_argument("--out", required=True, metavar="DIR",
                   help="a new or empty folder, or an earlier report (relative to the working "
                        "directory)")
    p.add_argument("--force", action="store_true",
                   help="write into a folder that holds other files, replacing only index.html "
                        "and the report's images")

    p = add("data", "check a market CSV and show rows, dates, interval, splits and features")
    p.add_argument("file", metavar="FILE", help="CSV of bars (relative to the working "
                   "directory)")
    p.add_argument("--splits", metavar="YAML", help="splits as YAML, e.g. "
                   "'{train: 0.7, val: 0.15, test: 0.15}' (default 0.7/0.15/0.15)")
    p.add_argument("--walk-forward", metavar="YAML", help="also show walk-forward folds, e.g. "
                   "'{folds: 3, mode: expanding}' (as data.walk_forward in a sweep config)")
    p.add_argument("--date-column", metavar="NAME",
                   help="the column holding the bar times (as data.date_column; default: found "
                        "by name, e.g. date or timestamp)")
    p.add_argument("--sep", metavar="SEP", help="field separator: , ; | or tab (as data.sep; "
                   "default: detected)")
    p.add_argument("--decimal", metavar="MARK", help="decimal mark: . or , (as data.decimal; default: .)")
    fmt(p)

    p = add("studies", "list the studies of a storage: created, algorithm, data, trials by "
                       "state, best value")
    storage(p)
    fmt(p)

    p = add("delete", "delete a study from the storage and its results folder "
                      "($TRADETUNE_RESULTS/NAME); nothing else")
    study(p)
    storage(p)
    p.add_argument("-y", "--yes", action="store_true",
                   help="do not ask for confirmation (required when stdin is not a terminal)")
    return parser


def _print(data: Any, fmt: str, table) -> None:
    if fmt == "json":
        print(json.dumps(data, indent=2, default=str))
    else:
        table(data)


def _numbers(values: list | None) -> str:
    return "[" + ", ".join(number(v) for v in values or []) + "]"


def _table_best(rows: list[dict]) -> None:
    if not rows:
        print("no COMPLETE trials yet")
        return
    if rows[0].get("pareto"):
        print(f"Pareto front ({len(rows)} shown, highest {next(iter(rows[0]['objectives']))} "
              "first): no trial below is beaten on every objective by another trial")
    for row in rows:
        m = row["metrics"]
        print(f"trial {row['number']}: value {number(row['value'])}{_never_trades(row)}"
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
    if "overfitting" in rows[0]:
        print(f"overfitting check: {rows[0]['overfitting']['verdict']}")
    if "study_test_looks" in rows[0]:
        print(f"test split: {_looks(rows[0]['study_test_looks'])}")
    if "market" in rows[0]:
        from search.query import describe_market

        print(f"market: {describe_market(rows[0]['market'])}")


NEVER_TRADES = "NEVER TRADES on validation (stays in cash)"


def _never_trades(row: dict) -> str:
    """A marker for a trial whose kept checkpoint made no trade on validation: its value is
    the score of staying in cash, not of a strategy."""
    return f" [{NEVER_TRADES}]" if row.get("never_trades") else ""


def _looks(test_looks: dict) -> str:
    from search.audit import describe

    return describe(test_looks)


def _promotion_line(p: dict) -> str:
    return (f"{p['verdict']}: {len(p['seeds'])} fresh seeds scored mean {number(p['mean'])} "
            f"(std {number(p['std'])}) against the study's {number(p['study_value'])} "
            f"({p['when']})")


def _table_promote(p: dict) -> None:
    print(f"trial {p['trial']} of {p['study']} on fresh seeds (validation {p['objective']}):")
    for seed, score in zip(p["seeds"], p["scores"], strict=True):
        print(f"  seed {seed}: {number(score)}")
    print(f"  mean {number(p['mean'])}, std {number(p['std'])}; study value "
          f"{number(p['study_value'])}"
          + (f" (its own seeds: {_numbers(p['study_run_scores']['seed_scores'])}, std "
             f"{number(p['study_run_scores']['score_std'])})" if p["study_run_scores"] else ""))
    print(f"verdict: {p['verdict']} (rule: {p['rule']})")
    if p["round"] > 1:
        print(f"note: promotion {p['round']} of this trial; repeating until it reproduces is "
              "selection on seeds again")


def _table_status(data: Any) -> None:
    rows = data if isinstance(data, list) else [data]
    if not rows:
        print("no studies yet")
    for row in rows:
        counts = ", ".join(f"{k} {v}" for k, v in row["counts"].items())
        print(f"{row['study']}: {counts}; best value {number(row['best_value'])}"
              + (f" (trial {row['best_trial']}"
                 + (f", {NEVER_TRADES}" if row.get("best_never_trades") else "") + ")"
                 if row["best_trial"] is not None else "")
              + (f"; test split {_looks(row['test_looks'])}" if "test_looks" in row else ""))


def _table_metrics(data: dict) -> None:
    for key, value in data.items():
        print(f"{key:>20}: {number(value)}")


def _table_compare(data: dict) -> None:
    print(f"{'trial':>5} {'value':>8} {'val Sharpe':>10} {'test Sharpe':>11} {'val P&L%':>9} "
          f"{'test P&L%':>9} {'test B&H%':>9}  note")
    for row in data["trials"]:
        print(f"{row['trial']:>5} {number(row['value']):>8} {number(row['val_sharpe']):>10} "
              f"{number(row['test_sharpe']):>11} {number(row['val_pnl_pct']):>9} "
              f"{number(row['test_pnl_pct']):>9} {number(row['test_buy_and_hold_pct']):>9}"
              + (f"  {NEVER_TRADES}" if row.get("never_trades") else ""))
    print(f"overfitting check: {data['overfitting']['verdict']}")
    if "study_test_looks" in data:
        print(f"test split: {_looks(data['study_test_looks'])} (this look included)")


def _table_studies(rows: list[dict]) -> None:
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


def _confirm(question: str) -> bool:
    """Ask on the terminal; without one, refuse (a script must say --yes)."""
    from search.errors import UserError

    if not sys.stdin or not sys.stdin.isatty():
        raise UserError(f"{question[:-1]}: not confirmed, and stdin is not a terminal to ask "
                        "on; add --yes to delete without asking")
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


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


# Events a sweep, a promotion or a report says on stderr; the others go to stdout.
_STDERR_EVENTS = ("stopped", "promoting", "note")


def _say(event: Any) -> None:
    """The ``progress`` callback of the commands: each event as the line it carries."""
    print(event.message, file=sys.stderr if event.kind in _STDERR_EVENTS else sys.stdout,
          flush=True)


def _exit_code(result: Any) -> int:
    """A sweep's exit code: 0, or 128 + the signal that stopped it (130 for Ctrl-C)."""
    return 128 + result.signal if result.stopped else 0


def _check_options(args: argparse.Namespace) -> None:
    """Options that cannot work together or are out of range: usage errors (exit 2)."""
    if getattr(args, "top", None) is not None and args.top < 1:
        raise argparse.ArgumentTypeError(f"--top must be at least 1, got {args.top}")
    if args.command == "evaluate" and args.top is not None:
        if args.trial is not None:
            raise argparse.ArgumentTypeError("give either --trial or --top, not both")
        if args.actions is not None:
            raise argparse.ArgumentTypeError("--actions writes one trial's actions; give "
                                             "--trial N (or nothing, for the best) instead "
                                             "of --top")


def run(args: argparse.Namespace) -> int:
    """Run one parsed command through the Python API (search/api.py) and print its result."""
    from search import api

    if args.command == "data":
        from search.config import parse_value

        splits = parse_value(args.splits, "data.splits", "--splits") if args.splits else None
        folds = (parse_value(args.walk_forward, "data.walk_forward", "--walk-forward")
                 if args.walk_forward else None)
        _print(api.describe_data(args.file, splits=splits, walk_forward=folds,
                                 date_column=args.date_column, sep=args.sep,
                                 decimal=args.decimal), args.format, _table_data)
        return 0
    if args.command == "launch":
        config = {"sets": args.set, "study": args.study, "num_samples": args.num_samples,
                  "storage": args.storage, "address": args.address}
        if args.dry_run:
            return _dry_run(api.dry_run(args.config, **config))
        return _exit_code(api.launch(args.config, **config, progress=_say,
                                     command=args.command_line))
    if args.command == "resume":
        return _exit_code(api.resume(args.study, storage=args.storage, address=args.address,
                                     progress=_say))
    if args.command == "studies":
        _print(api.studies(args.storage), args.format, _table_studies)
        return 0
    if args.command == "status" and args.study is None:
        _print(api.status_all(args.storage), args.format, _table_status)
        return 0

    _check_options(args)
    study = api.open_study(args.study, args.storage, check=False)  # each command checks
    if args.command == "delete":
        done = study.delete((lambda _: True) if args.yes else _confirm)
        folder = done["results_folder"]
        print(f"deleted study {done['study']!r} ({done['trials']} trials) from "
              f"{done['storage']}" + (f" and its results folder {folder}" if folder
                                      else "; it had no results folder"))
    elif args.command == "best":
        _print(study.best(args.top), args.format, _table_best)
    elif args.command == "status":
        _print(study.status(), args.format, _table_status)
    elif args.command == "export":
        result = study.export(args.out, args.trial, onnx=args.onnx, force=args.force)
        print(f"exported trial {result['trial']} of {result['study']} to {result['out']}: "
              + ", ".join(result["files"]))
    elif args.command == "promote":
        _print(study.promote(args.seeds, args.trial, progress=_say), args.format,
               _table_promote)
    elif args.command == "report":
        index = study.report(args.out, force=args.force, progress=_say)
        print(f"report of {args.study} written to {index}")
    elif args.command == "evaluate" and args.top is not None:
        _print(study.compare(args.top), args.format, _table_compare)
    elif args.command == "evaluate":
        _print(study.evaluate(args.trial, args.split, args.actions), args.format,
               _table_metrics)
    return 0


def _dry_run(checked: dict[str, Any]) -> int:
    """``launch --dry-run``: every check ``launch`` makes before it creates the study (see
    ``api.dry_run``), then the effective config as YAML (redirect it to a file and it launches
    the same sweep) and the splits as YAML comments."""
    import io

    import yaml

    print(yaml.safe_dump(checked["config"], sort_keys=False, default_flow_style=False), end="")
    table = io.StringIO()
    stdout, sys.stdout = sys.stdout, table
    try:
        _table_data(checked["data"])
    finally:
        sys.stdout = stdout
    print("# data (as `tradetune data` shows it):")
    for line in table.getvalue().splitlines():
        print(f"#   {line}")
    print(f"# storage {checked['storage']}: {checked['storage_state']}; study "
          f"{checked['config']['study']!r} does not exist there yet")
    print(f"# results folder {checked['results']}: "
          + ("exists" if checked["results_exists"] else "launch creates it"))
    print("# dry run: every check passed and nothing was created; run the same command "
          "without --dry-run to launch")
    return 0


def _check_command(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """An unknown subcommand is a usage error that names the closest command."""
    from search.errors import did_you_mean

    word = next((a for a in argv if not a.startswith("-")), None)
    commands = next(a.choices for a in parser._actions
                    if isinstance(a, argparse._SubParsersAction))
    if word is not None and word not in commands:
        parser.error(f"unknown command {word!r}{did_you_mean(word, commands)} "
                     f"(commands: {', '.join(commands)})")


class _SweepStdout:
    """A sweep's stdout. When its reader goes away (``tradetune launch ... | head``) the output
    stops and the sweep stops as on Ctrl-C (trials in flight FAIL, ``resume`` continues): left
    alone, the failing write inside Tune's callbacks failed trials and ended in a traceback."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.reader_gone = False

    def write(self, text: str) -> int:
        if not self.reader_gone:
            try:
                self.stream.write(text)
            except BrokenPipeError:
                self._gone()
        return len(text)

    def flush(self) -> None:
        if not self.reader_gone:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._gone()

    def _gone(self) -> None:
        import signal

        self.reader_gone = True
        os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())
        signal.raise_signal(signal.SIGINT)

    def __getattr__(self, name: str) -> Any:  # fileno, isatty, encoding, ...
        return getattr(self.stream, name)


def _stdout_closed() -> bool:
    """Whether the reader of stdout went away (``tradetune best ... | head``)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll(), or stdout without a descriptor
        return False


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tradetune`` console script."""
    try:
        code = _main(argv)
        sys.stdout.flush()  # inside the try: a closed pipe fails here, not at exit
        return code
    except BrokenPipeError:
        if not _stdout_closed():
            raise  # a broken pipe of something else is a bug to see
        # Stop quietly, as a command killed by SIGPIPE does (exit 141). Python's "Note on
        # SIGPIPE": point stdout at devnull so the interpreter's last flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    _check_command(parser, argv)
    args = parser.parse_args(argv)
    args.command_line = "tradetune " + " ".join(argv)
    from search.errors import UserError

    stdout = sys.stdout
    sweep = (_SweepStdout(stdout) if args.command in ("launch", "resume")
             and not getattr(args, "dry_run", False) else None)
    try:
        sys.stdout = sweep or stdout
        code = run(args)
        return 141 if sweep and sweep.reader_gone else code
    except BrokenPipeError:
        raise  # the reader went away; ``main`` stops quietly
    except argparse.ArgumentTypeError as exc:
        parser.exit(2, f"tradetune {args.command}: error: {exc}\n")
    except KeyboardInterrupt as exc:  # a sweep's own stops print more and exit 128 + signal
        if sweep and sweep.reader_gone:
            return 141
        print("interrupted", file=sys.stderr)
        return getattr(exc, "exit_code", 130)
    except UserError as exc:
        if args.debug:
            raise
        from search.storage import redact

        message = " ".join(str(exc).split())
        print(f"tradetune {args.command}: error: {redact(message)}", file=sys.stderr)
        return 1
    finally:
        sys.stdout = stdout


if __name__ == "__main__":
    sys.exit(main())
