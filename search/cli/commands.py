"""The ``tradetune`` command: ``main(argv) -> int``. It parses the arguments
(``search/cli/parser.py``), calls the Python API (``search/api.py``) and shows what it returns
(``search/cli/render.py``).

User errors print one line on stderr and exit 1 (usage errors exit 2); ``--debug`` shows the
traceback instead. Query commands (best, status, export, data, studies, delete) never import ray
or torch. Paths on the command line are taken from the working directory the command runs in.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from search.cli.parser import build_parser
from search.cli.render import (
    say,
    show,
    table_best,
    table_compare,
    table_data,
    table_metrics,
    table_promote,
    table_status,
    table_studies,
)


def _exit_code(result: Any) -> int:
    """A sweep's exit code: 0, or 128 + the signal that stopped it (130 for Ctrl-C)."""
    return 128 + result.signal if result.stopped else 0


def _confirm(question: str) -> bool:
    """Ask on the terminal; without one, refuse (a script must say --yes)."""
    from search.errors import UserError

    if not sys.stdin or not sys.stdin.isatty():
        raise UserError(f"{question[:-1]}: not confirmed, and stdin is not a terminal to ask "
                        "on; add --yes to delete without asking")
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _check_options(args: argparse.Namespace) -> None:
    """Options that cannot work together or are out of range: usage errors (exit 2). An
    option a command would ignore in the company of another is refused here, before anything
    is read or written."""
    if args.command == "launch":
        if args.top is not None and args.warm_start_from is None:
            raise argparse.ArgumentTypeError("--top goes with --warm-start-from STUDY")
        for option, key in (("--study", "study"), ("--num-samples", "search.num_samples"),
                            ("--warm-start-from", "search.warm_start")):
            given = [item for item in args.set
                     if ".".join(part.strip() for part in item.partition("=")[0].split("."))
                     == key]
            if getattr(args, option[2:].replace("-", "_")) is not None and given:
                raise argparse.ArgumentTypeError(
                    f"{option} and --set {given[-1]!r} both set {key}, and only one of them "
                    "would be used; give one")
    if getattr(args, "top", None) is not None and args.top < 1:
        raise argparse.ArgumentTypeError(f"--top must be at least 1, got {args.top}")
    if args.command == "evaluate" and args.top is not None:
        if args.trial is not None:
            raise argparse.ArgumentTypeError("give either --trial or --top, not both")
        if args.split is not None:
            # --top always scores the test split beside validation: --split val would be
            # ignored and the test split looked at all the same.
            raise argparse.ArgumentTypeError(
                f"--top compares validation and test side by side (a look at the test split), "
                f"so it takes no --split; for the validation split alone use --split "
                f"{args.split} with --trial N (or nothing, for the best)")
        if args.actions is not None:
            raise argparse.ArgumentTypeError("--actions writes one trial's actions; give "
                                             "--trial N (or nothing, for the best) instead "
                                             "of --top")
    if args.command == "evaluate" and args.stress and args.top is not None:
        raise argparse.ArgumentTypeError("--stress re-scores one trial; give --trial N (or "
                                         "nothing, for the best) instead of --top")
    if args.command == "evaluate" and args.force and args.actions is None:
        raise argparse.ArgumentTypeError("--force replaces an existing --actions file; it "
                                         "goes with --actions FILE")


def run(args: argparse.Namespace) -> int:
    """Run one parsed command through the Python API (search/api.py) and print its result."""
    from search import api

    _check_options(args)
    if args.command == "data":
        from search.config.yaml_loader import parse_value

        splits = parse_value(args.splits, "data.splits", "--splits") if args.splits else None
        folds = (parse_value(args.walk_forward, "data.walk_forward", "--walk-forward")
                 if args.walk_forward else None)
        show(api.describe_data(args.file, splits=splits, walk_forward=folds,
                                 date_column=args.date_column, sep=args.sep,
                                 decimal=args.decimal), args.format, table_data)
        return 0
    if args.command == "launch":
        config = {"sets": args.set, "study": args.study, "num_samples": args.num_samples,
                  "storage": args.storage, "address": args.address}
        if args.warm_start_from is not None:
            config["overrides"] = {"search.warm_start": {"study": args.warm_start_from,
                                                         "top": args.top or 5}}
        if args.dry_run:
            return _dry_run(api.dry_run(args.config, **config))
        return _exit_code(api.launch(args.config, **config, progress=say,
                                     command=args.command_line))
    if args.command == "resume":
        return _exit_code(api.resume(args.study, storage=args.storage, address=args.address,
                                     progress=say))
    if args.command == "studies":
        show(api.studies(args.storage), args.format, table_studies)
        return 0
    if args.command == "status" and args.study is None:
        show(api.status_all(args.storage), args.format, table_status)
        return 0

    study = api.open_study(args.study, args.storage, check=False)  # each command checks
    if args.command == "delete":
        done = study.delete((lambda _: True) if args.yes else _confirm)
        folder = done["results_folder"]
        kept = done.get("results_folder_kept")
        print(f"deleted study {done['study']!r} ({done['trials']} trials) from "
              f"{done['storage']}" + (f" and its results folder {folder}" if folder
                                      else f"; its results folder was left: {kept}" if kept
                                      else "; it had no results folder"))
    elif args.command == "best":
        show(study.best(args.top), args.format, table_best)
    elif args.command == "status":
        show(study.status(), args.format, table_status)
    elif args.command == "export":
        result = study.export(args.out, args.trial, onnx=args.onnx, force=args.force)
        print(f"exported trial {result['trial']} of {result['study']} to {result['out']}: "
              + ", ".join(result["files"]))
        tracked = result.get("mlflow")
        if tracked and tracked["logged"]:
            print(f"logged to MLflow run {tracked['run_id']} at {tracked['uri']} (export/)")
        elif tracked:
            print(f"note: {tracked['note']}", file=sys.stderr)
    elif args.command == "promote":
        show(study.promote(args.seeds, args.trial, address=args.address, progress=say),
             args.format, table_promote)
    elif args.command == "report":
        index = study.report(args.out, force=args.force, progress=say)
        print(f"report of {args.study} written to {index}")
    elif args.command == "evaluate" and args.top is not None:
        show(study.compare(args.top), args.format, table_compare)
    elif args.command == "evaluate":
        show(study.evaluate(args.trial, args.split or "test", args.actions, force=args.force,
                            stress=args.stress),
             args.format, table_metrics)
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
        table_data(checked["data"])
    finally:
        sys.stdout = stdout
    print("# data (as `tradetune data` shows it):")
    for line in table.getvalue().splitlines():
        print(f"#   {line}")
    print(f"# storage {checked['storage']}: {checked['storage_state']}; study "
          f"{checked['config']['study']!r} does not exist there yet")
    if checked.get("results_taken_by"):
        print(f"# results folder {Path(checked['results']).with_name(checked['config']['study'])}"
              f" belongs to {checked['results_taken_by']}; launch uses {checked['results']} "
              "(<id>: the first 8 hex digits of the new study's id)")
    else:
        print(f"# results folder {checked['results']}: "
              + ("exists" if checked["results_exists"] else "launch creates it"))
    if checked.get("warm_start"):
        print(f"# {checked['warm_start']}")
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


class _StderrLines(logging.Handler):
    """The ``tradetune`` logger's lines (a storage being retried, a stop signal) on stderr,
    as ``tradetune: ...``; the stream is looked up at each line, so a replaced sys.stderr
    (a notebook, pytest's capture) gets them."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"tradetune: {record.getMessage()}", file=sys.stderr, flush=True)


def _say_log_lines() -> None:
    log = logging.getLogger("tradetune")
    if not any(isinstance(handler, _StderrLines) for handler in log.handlers):
        log.addHandler(_StderrLines())


def _main(argv: Sequence[str] | None) -> int:
    _say_log_lines()
    parser = build_parser()
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
        from search.api import mask_passwords

        message = " ".join(exc.cli_message.split())
        print(f"tradetune {args.command}: error: {mask_passwords(message)}", file=sys.stderr)
        return 1
    finally:
        sys.stdout = stdout
