"""Retrain icpkit: ``python -m pipelines.train [--config pipelines/configs/default.yaml]``.

Loads and validates the CRM, trains the outcome models, derives the ICP, writes the profile to
``outputs/<experiment>/<date>/icp`` (``outputs/<experiment>/latest`` points at the newest), and
only then logs the run to MLflow and registers the models, all at once. A progress display
shows each outcome's tuning trials and the ICP stage's steps.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines._cli import (
    EXIT_CODES,
    PROJECT_ROOT,
    add_common_args,
    console,
    new_parser,
    run_main,
    setup_logging,
)

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import TaskID

log = logging.getLogger("pipelines.train")
NOTHING_TRAINED = 3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    codes = {**EXIT_CODES, 0: "trained, the ICP written and the run published to MLflow"}
    parser = new_parser("python -m pipelines.train", __doc__, codes)
    add_common_args(parser)
    parser.add_argument("--no-register", action="store_true", help="log runs but register no model")
    parser.add_argument(
        "--outputs", type=Path, default=PROJECT_ROOT / "outputs",
        help="where the profile goes: <outputs>/<experiment>/<date>/icp, <experiment>/latest (default: %(default)s)",
    )  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)  # before any heavy import: --help and typos answer at once
    setup_logging(args.verbose)
    started = time.perf_counter()

    import datetime as dt

    from icpkit.config import load_config
    from pipelines._cli import environ, parse_overrides

    cfg = load_config(args.config, parse_overrides(args.overrides))  # a config error answers before data imports

    from icpkit.data.loading import load_crm
    from icpkit.data.synthetic import ensure_synthetic_crm

    if args.no_register:
        cfg.tracking.register_models = False
    extract_date = cfg.data.extract_date or dt.date.today()
    if cfg.data.synthetic is not None:
        ensure_synthetic_crm(cfg.data.source, cfg.data.synthetic, extract_date)
    crm = load_crm(cfg.data, extract_date)
    log.info("loaded %s", ", ".join(f"{t}: {n:,} rows" for t, n in crm.summary().items()))
    for ex in crm.excluded:
        log.warning("%s: excluded %d rows on purpose: %s", ex.table, ex.count, ex.reason)

    from icpkit.memory import exempt_loaded_objects
    from icpkit.models.figures import FigureRenderer
    from icpkit.registry import (
        Tracker,
        check_dataset,
        check_tracking,
        dataset_key,
        recover_interrupted,
        resolve_tracking_uri,
    )
    from icpkit.registry.publish import publish
    from icpkit.secrets import mask_secrets
    from icpkit.workflow import point_latest, train_and_profile, write_outputs

    uri = resolve_tracking_uri(cfg.tracking.tracking_uri, environ(), PROJECT_ROOT)
    # Before minutes of training: the store answers, a killed publish is undone, datasets don't mix.
    check_tracking(uri)
    recover_interrupted(uri, cfg.tracking.experiment)
    if cfg.tracking.register_models:
        prefix = cfg.tracking.model_prefix
        names = [f"{prefix}-{o}" for o in [*cfg.training.outcomes, "scorer"]]
        key = dataset_key(cfg.data.source, {t: tc.source for t, tc in cfg.data.tables.items()})
        check_dataset(uri, names, key, allow_change=cfg.tracking.allow_dataset_change)
    # A SQLite store keeps its artifacts beside its database (the default store: mlruns/); a
    # tracking server decides where its artifacts go.
    tracker = Tracker(uri, cfg.tracking.experiment)
    previous = tracker.previous_training_json("icp/icp_profile.json")
    exempt_loaded_objects()  # the libraries and the CRM live all run: no collection walks them again
    with FigureRenderer() as figures, TrainingProgress(cfg.training.tuning.n_trials) as progress:
        # The features are not read after the ICP here: dropped then (~1 GB at a million accounts).
        # The outcome plots render in a helper process from the end of training, beside the ICP stage.
        run = train_and_profile(
            crm, cfg, previous, on_progress=progress.step, on_trial=progress.trial, keep_features=False,
            on_trained=figures.submit_trained,
        )  # fmt: skip
        if not run.training.trained:
            progress.stop()
            _print_summary(run, None)
            console.print("[red]nothing trained[/]: every outcome was skipped (reasons above)", highlight=False)
            return NOTHING_TRAINED
        progress.step("writing the ICP")
        folder = write_outputs(run, args.outputs, latest=False)
        progress.step("logging to MLflow and registering")
        published = publish(run, tracker, folder, figures)
        if folder is not None:  # only a published run becomes <experiment>/latest
            point_latest(folder)

    _print_summary(run, published)
    if run.icp is not None:
        _print_icp(run, folder)
    shown = mask_secrets(uri)
    console.print(
        f"MLflow run {published.run_id} in {shown} — browse with: mlflow ui --backend-store-uri {shown}\n"
        f"finished in {time.perf_counter() - started:.0f}s",
        highlight=False,
    )
    return 0


class TrainingProgress:
    """A rich progress display: the current step, a bar of tuning trials per outcome, the ICP steps.

    ``step(message)`` takes :func:`icpkit.workflow.train_and_profile`'s ``on_progress`` messages
    (``"training win"``, ``"ICP: segments"``, ...), ``trial(outcome, done, total)`` its ``on_trial``.
    ``n_trials`` sizes each outcome's tuning bar before its first trial ends.
    """

    def __init__(self, n_trials: int | None = None, to: Console | None = None) -> None:
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        from icpkit.icp.derive import ICP_STEPS

        self._steps, self._n_trials = ICP_STEPS, n_trials
        self._progress = Progress(
            SpinnerColumn(), TextColumn("{task.description:<34}"), BarColumn(),
            TextColumn("{task.fields[count]:>7}"), TimeElapsedColumn(), console=to or console,
        )  # fmt: skip
        self._status = self._progress.add_task("starting", total=None, count="")
        self._tuning: dict[str, TaskID] = {}
        self._done: dict[str, int] = {}
        self._icp: TaskID | None = None

    def __enter__(self) -> TrainingProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._drop_untuned()
        self._progress.update(self._status, description="done", total=1, completed=1)
        self._progress.stop()

    def step(self, message: str) -> None:
        self._drop_untuned()
        self._progress.update(self._status, description=message)
        if message.startswith("training ") and self._n_trials:
            self._bar(message.removeprefix("training "), 0, self._n_trials)
        if message.startswith("ICP: "):
            if self._icp is None:
                self._icp = self._progress.add_task("ICP stage", total=len(self._steps), count="")
            name = message.removeprefix("ICP: ")
            done = self._steps.index(name) if name in self._steps else 0
            self._set(self._icp, done, len(self._steps), description=f"ICP: {name}")
        elif self._icp is not None:  # the ICP stage is over
            self._set(self._icp, len(self._steps), len(self._steps), description="ICP stage")

    def trial(self, outcome: str, done: int, total: int) -> None:
        self._bar(outcome, done, total)

    def _bar(self, outcome: str, done: int, total: int) -> None:
        if outcome not in self._tuning:
            self._tuning[outcome] = self._progress.add_task(f"tuning {outcome} (trials)", total=total, count="")
        self._done[outcome] = done
        self._set(self._tuning[outcome], done, max(total, done))

    def _set(self, task: TaskID, done: int, total: int, **fields: str) -> None:
        self._progress.update(task, completed=done, total=total, count=f"{done}/{total}", **fields)

    def _drop_untuned(self) -> None:
        """An outcome skipped before tuning leaves no empty bar behind."""
        for outcome in [o for o, n in self._done.items() if n == 0]:
            self._progress.remove_task(self._tuning.pop(outcome))
            del self._done[outcome]


def _print_icp(run, folder) -> None:  # noqa: ANN001 - pipeline objects, printed only
    p = run.icp.profile
    ev = p["evidence"]
    colour = "green" if ev["status"] == "sufficient" else "yellow"
    console.print(f"\n[bold]ICP[/] evidence: [{colour}]{ev['status']}[/] — {ev['statement']}", highlight=False)
    top = p["weights"]["icp"][:5] if ev["status"] == "sufficient" else []
    if top:
        listed = ", ".join(f"{w['attribute']} {w['share_of_role']:.0f}%" for w in top)
        console.print(f"  top ICP attributes (share of the ICP weight): {listed}", highlight=False)
    else:
        console.print("  top ICP attributes: none shows out-of-sample evidence", highlight=False)
    console.print(f"  tiers: {p['scores']['tier_counts']}", highlight=False)
    for line in p["summary"]["tier_statements"]:
        console.print(f"  {line}", highlight=False)
    console.print(f"  {p['segments']['note']}", highlight=False)
    for e in p["negative_icp"]["exclusions"][:5]:
        console.print(f"  exclusion: {e['condition']} ({e['accounts']:,} accounts)", highlight=False)
    console.print(f"  profile: {folder / 'icp_profile.md'} (also in the MLflow run under icp/)", highlight=False)


def _print_summary(run, published) -> None:  # noqa: ANN001
    from rich import box
    from rich.table import Table

    from icpkit.training import summary_table

    aliases = {k: published.alias(k) for k in run.training.reports} if published else {}
    summary = summary_table(run.training, aliases)
    table = Table(title=f"icpkit training summary — {run.dataset}", box=box.SIMPLE_HEAD)
    for header in ("outcome", "status", "rows", "positives", "model", "test AUC [95% CI]", "lift@10%", "ECE", "alias"):
        table.add_column(header)
    notes = []
    for r in summary.to_dict("records"):
        trained = r["status"] == "trained"
        table.add_row(
            r["outcome"], r["status"], f"{r['rows']:,}", f"{r['positives']:,}", r["model"],
            f"{r['test_auc']:.3f} {r['auc_ci']}" if trained else "—",
            f"{r['top_decile_lift']:.2f}" if trained else "—", f"{r['ece']:.3f}" if trained else "—", r["alias"],
        )  # fmt: skip
        if isinstance(r.get("note"), str) and r["note"]:
            notes.append(f"{r['outcome']}: {r['note']}")
        if trained and r.get("suspected_leaks"):
            notes.append(f"{r['outcome']}: suspected leak {r['suspected_leaks']} (evidence in the profile)")
        if trained and r.get("tuning_cut_by_timeout"):
            notes.append(f"{r['outcome']}: tuning cut by the time cap ({r['tuning_trials']} trials)")
    console.print(table)
    for note in notes:
        console.print(f"  [yellow]note[/] {note}", highlight=False)
    skipped = int((summary["status"] == "skipped").sum())
    console.print(f"{len(summary) - skipped} outcome(s) trained, {skipped} skipped")


if __name__ == "__main__":
    run_main(main)
