"""Retrain icpkit: ``python -m pipelines.train [--config pipelines/configs/default.yaml]``.

Loads and validates the CRM, trains the outcome models, derives the ICP, writes the profile to
``outputs/<experiment>/<date>/icp`` (``outputs/<experiment>/latest`` points at the newest), and
only then logs the run to MLflow and registers the models, all at once.

Exit codes: 0 trained and published; 2 bad input or config (a message, no traceback);
3 nothing trained (every outcome skipped, with the reasons); 1 a bug (traceback).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from pipelines._cli import PROJECT_ROOT, add_common_args, console, run_main, setup_logging

log = logging.getLogger("pipelines.train")
NOTHING_TRAINED = 3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
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
    from icpkit.data.loading import load_crm
    from icpkit.data.synthetic import ensure_synthetic_crm
    from pipelines._cli import environ, parse_overrides

    cfg = load_config(args.config, parse_overrides(args.overrides))
    if args.no_register:
        cfg.tracking.register_models = False
    extract_date = cfg.data.extract_date or dt.date.today()
    if cfg.data.synthetic is not None:
        ensure_synthetic_crm(cfg.data.source, cfg.data.synthetic, extract_date)
    crm = load_crm(cfg.data, extract_date)
    log.info("loaded %s", ", ".join(f"{t}: {n:,} rows" for t, n in crm.summary().items()))
    for ex in crm.excluded:
        log.warning("%s: excluded %d rows on purpose: %s", ex.table, ex.count, ex.reason)

    from icpkit.registry import (
        Tracker,
        check_dataset,
        check_tracking,
        dataset_key,
        recover_interrupted,
        resolve_tracking_uri,
    )
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
    with console.status("training…") as status:
        run = train_and_profile(crm, cfg, previous, on_progress=lambda msg: status.update(f"{msg} …"))
        if not run.training.trained:
            _print_summary(run, None)
            console.print("[red]nothing trained[/]: every outcome was skipped (reasons above)", highlight=False)
            return NOTHING_TRAINED
        status.update("writing the ICP …")
        folder = write_outputs(run, args.outputs, latest=False)
        status.update("logging to MLflow and registering …")
        from icpkit.registry.publish import publish

        published = publish(run, tracker, folder)
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
