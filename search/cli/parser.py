"""The ``tradetune`` command's arguments: one parser per subcommand, with the help text."""
from __future__ import annotations

import argparse
import sys
from typing import Any

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
                      how long launch/resume/promote wait for the Ray cluster at --address to
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


# How --help names each package --version prints (search.versions.PACKAGES, after TradeTune
# and Python): built from that list, so the help cannot name fewer than the command prints.
_SHOWN_AS = {"ray": "Ray (Tune, RLlib)", "optuna": "Optuna", "tensortrade": "TensorTrade"}


def _version_help() -> str:
    from search.versions import PACKAGES

    names = ["TradeTune", "Python",
             *(_SHOWN_AS.get(name, name) for name in PACKAGES if name != "tradetune")]
    return f"show the versions of {', '.join(names[:-1])} and {names[-1]}, and exit"


def build_parser() -> argparse.ArgumentParser:
    """The ``tradetune`` parser: global options, then one subparser per command."""
    parser = argparse.ArgumentParser(
        prog="tradetune", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Hyperparameter sweeps for RLlib trading agents on TensorTrade, with the "
                    "study kept in SQL so sweeps resume after any crash.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action=_Version, help=_version_help())
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
    p.add_argument("--warm-start-from", metavar="STUDY",
                   help="queue the best parameter sets of this earlier study (same storage, same "
                        "algorithm) as the first trials; values are not copied "
                        "(search.warm_start; default: none)")
    p.add_argument("--top", type=int, metavar="K",
                   help="with --warm-start-from: how many of its best trials (default 5)")
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
    p.add_argument("--split", choices=("val", "test"),
                   help="test (default: the period nothing was selected on) or val; not with "
                        "--top")
    p.add_argument("--top", type=int, metavar="K",
                   help="instead: validation vs test side by side for the K best trials, with "
                        "the overfitting check (a look at the test split; takes no --split, "
                        "--trial or --actions)")
    p.add_argument("--actions", metavar="FILE.csv",
                   help="also write one row per bar of the split: timestamp, close, action "
                        "(and its meaning, beyond long-only), position (the signed exposure "
                        "held), portfolio value, buy-and-hold value; a new file (default: an "
                        "existing file is refused)")
    p.add_argument("--force", action="store_true",
                   help="with --actions: replace an existing file (never a study storage file "
                        "or a file in a study's results folder)")
    p.add_argument("--stress", action="store_true",
                   help="also re-score with commission x2, one bar of execution delay and 10 bps "
                        "more slippage, and say whether the edge over buy-and-hold survives each "
                        "(default: off)")
    fmt(p)

    p = add("promote", "retrain a trial's configuration on seeds the study never used and "
                       "say whether its score reproduces")
    study(p)
    storage(p)
    p.add_argument("--trial", type=int, metavar="N",
                   help="trial number (default: the best, as `evaluate` picks it)")
    p.add_argument("--seeds", type=int, required=True, metavar="K",
                   help="how many fresh seeds to train (1..100)")
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS or local)")
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
    p.add_argument("--decimal", metavar="MARK",
                   help="decimal mark: . or , (as data.decimal; default: .)")
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
