"""`tradetune report`: a self-contained HTML page with the plots that judge a sweep.

The page (``index.html`` plus PNGs beside it, no scripts, no network) heads with the top trials
and their metrics, then shows Optuna's optimisation history, parameter importances, a slice
plot of the most important parameters and the per-evaluation validation scores, and the best
trial's kept checkpoint traded on the validation and test splits against buy-and-hold. The
study is read once into an in-memory copy, so every plot of a running study shows the same
snapshot. Trading checkpoints on the test split is a look at it: the report records it in the
study once (``search/study/audit.py``) and shows the study's count.
"""
from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any

from search.errors import DataError, StudyError
from search.events import ProgressCallback, ProgressEvent, no_progress
from search.formats import describe_market, describe_test_looks, number
from search.results.evaluate import compare_top
from search.results.outputs import write_folder
from search.results.summaries import market_of, trial_summary
from search.study import audit, studies
from search.study.provenance import check_data_unchanged, space_of
from search.study.schema import ATTR_CONFIG, ATTR_FAIL
from search.study.storage import redact
from search.study.trials import (
    checkpoint_of,
    first_value,
    open_existing,
    optuna_study_id,
    state_counts,
    top_trials,
)

TOP = 10          # rows of the table
COMPARED = 5      # top trials traded on the test split in the overfitting check
CURVES = 5        # top trials drawn in the per-evaluation plot
SLICES = 4        # most important parameters in the slice plot
IMAGES = ("pareto.png", "history.png", "importances.png", "slices.png", "evaluations.png",
          "equity.png")
# Every name a report writes into its folder: each report replaces all of them (an image this
# report does not draw is removed) and touches nothing else there.
REPORT_NAMES = ("index.html", *IMAGES)
TITLE = "TradeTune report: "
# A trial whose kept checkpoint made no trade on validation: its 0 is no strategy.
NEVER_TRADES = "never trades (cash)"


def _note(row: dict[str, Any]) -> str:
    """A trial that is no strategy on validation (``search/results/degenerate.py``), or that
    broke ``search.constraints`` (which ones), named."""
    notes = [NEVER_TRADES if row.get("never_trades") else row.get("degenerate") or ""]
    if row.get("feasible") is False:
        notes.append("infeasible: " + "; ".join(row.get("constraints_broken") or []))
    return ", ".join(n for n in notes if n)


# Validation metrics of a trial's kept checkpoint: key, column header, scale.
METRICS = (("sharpe", "Sharpe", 1), ("pnl_pct", "P&L %", 1), ("buy_and_hold_pct", "B&H %", 1),
           ("max_drawdown", "max DD %", 100), ("trades", "trades", 1))


def write_report(url: str, study_name: str, out: Path, force: bool = False,
                 progress: ProgressCallback = no_progress) -> Path:
    """Write ``out/index.html`` and its PNG images; return the index path.

    Args:
        url: the study storage URL (SQLite or PostgreSQL); never created or written to.
        study_name: an existing study (running or finished).
        out: the report folder, created if missing. It must be new, empty or hold an earlier
            report (whose index.html and images are replaced), unless ``force``; nothing else
            in it is touched. The report is written beside it first, so an error leaves it as
            it was.
        force: write into a folder that holds other files (still replacing only the report's
            own names).
        progress: told (a "note" event) when the report leaves something out, and why.

    Raises:
        StudyError: the storage or the study does not exist, or its custom search space cannot
            be imported.
        OutputError: ``out`` is a file, cannot be written, or holds other files.
    """
    out = Path(out)
    storage = open_existing(url)
    study = studies.load_study(storage, study_name)
    counts = state_counts(storage, optuna_study_id(study))
    top = top_trials(storage, optuna_study_id(study), TOP)
    snapshot = _snapshot(study)
    config = study.user_attrs.get(ATTR_CONFIG) or {}
    space = space_of(study) if config else None
    objectives = studies.objective_names(config)
    target = f"validation {objectives[0]}"

    def write(folder: Path) -> None:
        data_problem = _data_problem(study, progress) if top and config else None
        sections = _optuna_sections(snapshot, top, folder, target, objectives)
        looked: list[int] = []  # trials this report scored on the test split
        sections.append(_equity_section(study, space, top[0] if top else None, folder,
                                        data_problem, looked))
        check = None
        if top:
            check = ({"note": f"cannot trade the top trials on the test split: {data_problem}"}
                     if data_problem else _overfitting_check(url, study_name))
            looked.extend(row["trial"] for row in check.get("trials", []))
        if looked:  # one look per report, recorded before the page shows any test score
            audit.record_look(study, looked, "report")
        test_looks = audit.summary(storage, optuna_study_id(study))
        page = _page(study_name, url, config, counts, top, snapshot, sections, target, check,
                     test_looks)
        (folder / "index.html").write_text(page, encoding="utf-8")

    write_folder(out, REPORT_NAMES, write, ours=_is_report, force=force, storage_url=url,
                 what="an earlier TradeTune report")
    return out / "index.html"


def _data_problem(study: Any, progress: ProgressCallback) -> str | None:
    """Why the study's checkpoints cannot be traded on its market data (the file changed since
    launch, or is gone), said once through ``progress`` too; None when they can."""
    try:
        check_data_unchanged(study)
    except StudyError as exc:
        progress(ProgressEvent("note", f"tradetune report: note: {exc}; the report leaves out "
                                       "trading the checkpoints"))
        return str(exc)
    return None


def _is_report(folder: Path) -> bool:
    """Whether ``folder`` holds a report this command wrote (its index.html says so)."""
    try:
        with (folder / "index.html").open(encoding="utf-8", errors="replace") as handle:
            return f"<title>{html.escape(TITLE)}" in handle.read(4096)
    except OSError:
        return False


def _snapshot(study: Any):
    """An in-memory copy of the study's trials, read once: all plots agree on a running study."""
    import optuna

    copy = optuna.create_study(study_name=study.study_name, directions=study.directions)
    copy.add_trials(study.get_trials(deepcopy=False))
    return copy


def _section(title: str, image: str | None = None, caption: str = "",
             note: str = "") -> dict[str, str | None]:
    return {"title": title, "image": image, "caption": caption, "note": note}


def _optuna_sections(snapshot: Any, top: list, out: Path, target: str,
                     objectives: list[str]) -> list[dict]:
    from search.results import report_plots as plots

    trials = snapshot.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    waiting = (f"no COMPLETE trial yet ({len(trials)} trials in the study); this plot appears "
               "once a trial completes")
    multi = len(snapshot.directions) > 1
    first = (lambda t: t.values[0]) if multi else None  # plots of the first objective
    sections = []
    if multi and complete:
        plots.pareto(snapshot, out / "pareto.png", [f"validation {n}" for n in objectives])
        sections.append(_section("Pareto front", "pareto.png",
                                 f"Every completed trial on {objectives[0]} and {objectives[1]}; "
                                 "the front holds the trials no other trial beats on every "
                                 "objective."))
    elif multi:
        sections.append(_section("Pareto front", note=waiting))
    if complete:
        plots.history(snapshot, out / "history.png", target, first)
        sections.append(_section("Optimisation history", "history.png",
                                 f"The {target} of each completed trial's kept checkpoint, and "
                                 "the best so far."))
    else:
        sections.append(_section("Optimisation history", note=waiting))

    varying = sorted({name for t in complete for name in t.params
                      if len({repr(c.params.get(name)) for c in complete}) > 1})
    if len(complete) >= 2 and varying:
        ranked = plots.importances(snapshot, varying, out / "importances.png", target, first)
        plots.slices(snapshot, ranked[:SLICES], out / "slices.png", target, first)
        sections.append(_section("Parameter importances", "importances.png",
                                 f"PED-ANOVA importance (Optuna's default) of each searched "
                                 f"parameter for the {target}, over {len(complete)} completed "
                                 "trials."))
        sections.append(_section("Objective against the most important parameters",
                                 "slices.png", "Each dot is a completed trial; colour is its "
                                 "trial number (later trials darker)."))
    else:
        why = (f"needs at least 2 completed trials whose parameters differ (the study has "
               f"{len(complete)} completed)")
        sections.append(_section("Parameter importances", note=why))
        sections.append(_section("Objective against the most important parameters", note=why))

    drawn = [t for t in top[:CURVES] + [t for t in trials if t.state.name == "RUNNING"]
             if t.intermediate_values]
    if drawn:
        plots.curves(drawn, out / "evaluations.png", target)
        sections.append(_section(
            "Validation score over evaluations", "evaluations.png",
            f"The {target} each of the top {min(len(top), CURVES)} trials (and any running "
            "trial, dashed) scored at each evaluation; a trial's value is the best of its "
            "curve, the evaluation whose checkpoint it keeps."))
    else:
        sections.append(_section("Validation score over evaluations", note=(
            "Optuna keeps no per-evaluation values in a multi-objective study" if multi
            else "no trial has reported an evaluation yet")))
    return sections


def _equity_section(study: Any, space: Any, best: Any | None, out: Path,
                    data_problem: str | None, looked: list[int]) -> dict[str, str | None]:
    """The best trial traded on validation and test; its number is added to ``looked`` once
    it has been scored on the test split."""
    from search.results import report_plots as plots

    title = "Best trial against buy-and-hold"
    if best is None:
        return _section(title, note="no COMPLETE trial yet")
    if data_problem:
        return _section(title, note=f"cannot trade the best trial: {data_problem}")
    try:
        checkpoint = checkpoint_of(best)
        config = studies.stored_config(study)
    except StudyError as exc:
        return _section(title, note=f"cannot trade the best trial: {exc}")
    import pandas as pd

    from trainables.actions import is_long_only
    from trainables.evaluation import evaluate
    from trainables.market import prepare_market
    from trainables.rllib_trainable import load_module
    from trainables.settings import trial_env

    settings = space.replay(best.params)
    env = trial_env(config, settings)
    try:  # the rest of the report is still worth having if the market data moved
        bars = prepare_market(config["data"]).bars
    except (DataError, OSError) as exc:
        return _section(title, note=f"cannot trade the best trial: {exc}")
    module = load_module(checkpoint)
    runs = []
    for split, label in (("val", "validation"), ("test", "test (never seen)")):
        result = evaluate(module, env, split)
        closes = bars["close"].reindex(pd.to_datetime(result.dates)).to_numpy()
        runs.append({"label": label, "evaluation": result, "closes": closes})
    looked.append(best.number)
    plots.equity(runs, out / "equity.png", f"Trial {best.number}: kept checkpoint, greedy")
    levels = runs[0]["evaluation"].levels
    marks = ("▲ buy, ▼ sell" if is_long_only(levels) else
             "▲ buy (exposure up), ▼ sell (exposure down)"
             + ("; shaded: short" if min(levels) < 0 else ""))
    return _section(title, "equity.png",
                    f"Trial {best.number}'s kept checkpoint trading greedily on the validation "
                    "split (which selected it) and the test split (which nothing saw), against "
                    f"buy-and-hold; {marks}; drawdown from the running peak below.")


def _overfitting_check(url: str, study_name: str) -> dict[str, Any]:
    """``evaluate --top``'s comparison for the report (not recorded: the report records its one
    look itself); a note instead when it cannot be made."""
    try:
        return compare_top(url, study_name, COMPARED, record=False)
    except (StudyError, DataError, OSError) as exc:
        return {"note": f"cannot trade the top trials on the test split: {exc}"}


def _overfitting_html(check: dict[str, Any]) -> list[str]:
    e = html.escape
    parts = ["<h2>Overfitting check: validation against test</h2>"]
    if "note" in check:
        return parts + [f'<p class="note">{e(check["note"])}</p>']
    rows = [[r["trial"], r["value"], r["val_sharpe"], r["test_sharpe"], r["val_pnl_pct"],
             r["test_pnl_pct"], r["test_buy_and_hold_pct"], "yes" if r["beats_buy_and_hold"]
             else "no", _note(r)] for r in check["trials"]]
    parts.append(_table(["trial", "value", "val Sharpe", "test Sharpe", "val P&L %",
                         "test P&L %", "test B&H %", "beats B&H", "note"], rows))
    if check.get("verdict"):
        parts.append(f'<p class="best">Verdict against buy-and-hold: '
                     f'{e(check["verdict"]["text"])}</p>')
    verdict = check["overfitting"]
    dsr = verdict.get("deflated_sharpe")
    parts.append(f'<p class="best">Against cash: {e(verdict["verdict"])}</p>')
    if dsr is not None:
        parts.append(f"<p>Deflated Sharpe ratio of the best trial: <b>{e(number(dsr))}</b> "
                     f"(the probability its validation Sharpe beats the best of "
                     f"{verdict['n_trials']} trials of pure luck; Bailey and L&oacute;pez de "
                     "Prado). The test split was seen by no trial: a validation ranking that "
                     "does not survive it was luck.</p>")
    return parts


def _promotion_html(summaries: list[dict[str, Any]]) -> list[str]:
    """The top trials retrained on fresh seeds by `tradetune promote`, or how to do it."""
    promoted = [s for s in summaries if s.get("promotion")]
    parts = ["<h2>Promotion on fresh seeds</h2>"]
    if not promoted:
        return parts + ['<p class="note">No top trial has been retrained on fresh seeds yet: '
                        "<code>tradetune promote --study NAME --seeds 5</code> tells whether "
                        "the best trial's score was its configuration or its seeds.</p>"]
    rows = [[s["number"], p["study_value"], len(p["seeds"]), p["mean"], p["std"], p["verdict"],
             p["when"]] for s in promoted for p in [s["promotion"]]]
    parts.append(_table(["trial", "study value", "fresh seeds", "mean", "std", "verdict",
                         "when"], rows))
    parts.append(f"<p>Rule: {html.escape(promoted[0]['promotion']['rule'])}. The fresh seeds "
                 "were never used by the study (tuning and judging on the same seeds "
                 "overfits the seeds; Eimer et al. 2023).</p>")
    return parts


def _scaled(value: Any, scale: float) -> Any:
    return value * scale if isinstance(value, (int, float)) and scale != 1 else value


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(number(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>'


def _page(name: str, url: str, config: dict, counts: dict[str, int], top: list, snapshot: Any,
          sections: list[dict], target: str, check: dict[str, Any] | None = None,
          test_looks: dict[str, Any] | None = None) -> str:
    e = html.escape
    parts = [f"<h1>Study {e(name)}</h1>",
             f"<p>{e(redact(url))} &middot; snapshot {e(time.strftime('%Y-%m-%d %H:%M:%S'))}"
             + (f" &middot; {e(str(config.get('algorithm', '')).upper())}, budget "
                f"{e(str((config.get('search') or {}).get('num_samples')))} trials"
                if config else "") + "</p>",
             "<p>" + (", ".join(f"{e(k)} {v}" for k, v in counts.items() if v)
                      or "no trials yet") + "</p>"]
    if config:
        parts.append(f'<p class="market">Market (fixed for the study): '
                     f"{e(describe_market(market_of(config)))}</p>")
    if test_looks is not None:
        looks = e(describe_test_looks(test_looks))
        parts.append(f'<p class="looks">Test split: {looks}. Each look '
                     "at the test split is a selection step: after many looks its score is no "
                     "longer an unbiased estimate of unseen data.</p>")
    if counts.get("RUNNING"):
        parts.append(f'<p class="note">The study is running: this is a snapshot. Rerun '
                     f'<code>tradetune report</code> to refresh, or watch it live with '
                     f'<code>optuna-dashboard {e(redact(url))}</code>.</p>')
    if top:
        best = top[0]
        parts.append(f'<p class="best">Best trial: <b>#{best.number}</b>, value '
                     f'<b>{e(number(first_value(best)))}</b> ({e(target)})</p>')
        params = sorted({k for t in top for k in t.params})
        summaries = [trial_summary(t) for t in top]
        rows = [[rank, s["number"], s["value"], *(_scaled(s["metrics"].get(k), scale)
                                                  for k, _, scale in METRICS),
                 _note(s), s["stop_reason"],
                 *(s["params"].get(p) for p in params)]
                for rank, s in enumerate(summaries, 1)]
        parts.append(f"<h2>Top {len(top)} trials</h2>")
        parts.append(_table(["rank", "trial", "value", *(label for _, label, _ in METRICS),
                             "note", "stopped by", *params], rows))
        parts.extend(_promotion_html(summaries))
    else:
        parts.append('<p class="note">No COMPLETE trial yet: there is no best trial.</p>')
    failed = [t for t in snapshot.get_trials(deepcopy=False) if t.state.name == "FAIL"]
    if failed:
        parts.append(f"<h2>Failed trials ({len(failed)})</h2>")
        parts.append(_table(["trial", "reason"], [[t.number, t.user_attrs.get(ATTR_FAIL, "-")]
                                                  for t in failed[-TOP:]]))
    for section in sections:
        parts.append(f"<h2>{e(section['title'])}</h2>")
        if section["image"]:
            parts.append(f'<figure><img src="{e(section["image"])}" alt="{e(section["title"])}">'
                         f"<figcaption>{e(section['caption'])}</figcaption></figure>")
        else:
            parts.append(f'<p class="note">{e(section["note"])}</p>')
    if check is not None:
        parts.extend(_overfitting_html(check))
    return PAGE.format(title=e(f"{TITLE}{name}"), body="\n".join(parts))


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em auto; max-width: 1300px; padding: 0 1em; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }}
th {{ background: #f0f0f0; }}
.scroll {{ overflow-x: auto; }}
.note {{ color: #555; font-style: italic; }}
.best {{ font-size: 1.2em; }}
img {{ max-width: 100%; }}
figcaption {{ color: #444; }}
</style></head>
<body>
{body}
</body></html>
"""
