"""Retrain icpkit: ``python -m pipelines.train [--config pipelines/configs/default.yaml]``.

Reads the config, loads and validates the CRM, trains the four outcome models and the ICP,
logs everything to MLflow and prints a summary. The work itself lives in ``icpkit``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import time
from pathlib import Path

import pandas as pd
from rich import box
from rich.table import Table

from icpkit.config import load_config
from icpkit.data.loading import load_crm
from icpkit.data.synthetic import ensure_synthetic_crm
from icpkit.icp.build import ICPResult, build_icp, log_icp
from icpkit.registry import (
    Tracker,
    check_dataset,
    check_tracking,
    dataset_key,
    recover_interrupted,
    resolve_tracking_uri,
)
from icpkit.training import summary_table, train_outcomes
from pipelines._cli import (
    PROJECT_ROOT,
    add_common_args,
    console,
    environ,
    parse_overrides,
    run_main,
    setup_logging,
)

log = logging.getLogger("pipelines.train")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.train", description=__doc__)
    add_common_args(parser)
    parser.add_argument("--no-register", action="store_true", help="log runs but register no model")
    args = parser.parse_args()
    setup_logging(args.verbose)
    started = time.perf_counter()

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

    uri = resolve_tracking_uri(cfg.tracking.tracking_uri, environ(), PROJECT_ROOT)
    check_tracking(uri)
    recover_interrupted(uri, cfg.tracking.experiment)
    if cfg.tracking.register_models:
        prefix = cfg.tracking.model_prefix
        names = [f"{prefix}-{o}" for o in [*cfg.training.outcomes, "segments"]]
        key = dataset_key(cfg.data.source, {t: tc.source for t, tc in cfg.data.tables.items()})
        check_dataset(uri, names, key, allow_change=cfg.tracking.allow_dataset_change)
    tracker = Tracker(uri, cfg.tracking.experiment, artifact_root=PROJECT_ROOT / "mlruns")
    params = {"config": cfg.model_dump(mode="json"), "data_fingerprint": crm.fingerprint()}
    with tracker.start_training(run_name="train", params=params, tags={"source": cfg.data.source}) as run_id:
        with console.status("training…") as status:

            def progress(outcome: str, state: str) -> None:
                if state == "start":
                    status.update(f"training [bold]{outcome}[/] …")
                else:
                    log.info("%s: %s", outcome, state)

            result = train_outcomes(crm, cfg, tracker=tracker, on_outcome=progress)
            result.parent_run_id = run_id
            summary = summary_table(result)
            tracker.log_table(summary, "summary.csv")
            icp = None
            if result.trained:
                previous = tracker.previous_training_json("icp/icp_profile.json")
                icp = build_icp(
                    crm, result, cfg, version=run_id, previous=previous,
                    on_step=lambda s: status.update(f"ICP: {s} …"),
                )  # fmt: skip
                status.update("ICP: writing and logging …")
                icp_dir = icp.write(PROJECT_ROOT / "outputs" / "icp")
                registered = log_icp(icp, icp_dir, cfg, tracker)

    _print_summary(summary)
    if icp is not None:
        _print_icp(icp, icp_dir, registered)
    console.print(
        f"MLflow run {run_id} in {uri} — browse with: "
        f"mlflow ui --backend-store-uri {uri}\n"
        f"finished in {time.perf_counter() - started:.0f}s",
        highlight=False,
    )
    return 0


def _print_icp(icp: ICPResult, folder: Path, registered: dict) -> None:
    p = icp.profile
    ev = p["evidence"]
    colour = "green" if ev["status"] == "sufficient" else "yellow"
    console.print(
        f"\n[bold]ICP[/] evidence: [{colour}]{ev['status']}[/] — {ev['statement']}", highlight=False
    )
    top = [w for w in p["weights"].get("blended_fit", []) if w["weight"] > 0][:5]
    if not top:
        console.print("  top ICP attributes: none shows out-of-sample evidence")
    else:
        listed = ", ".join(f"{w['attribute']} {w['weight']:.0f}%" for w in top)
        console.print(f"  top ICP attributes (combined fit weight): {listed}", highlight=False)
    console.print(f"  tiers: {p['scores']['tier_counts']}", highlight=False)
    for w in p["tiers"]["warnings"]:
        console.print(f"  [yellow]tier warning[/] {w}", highlight=False)
    if "segments" in p:
        seg = registered.get("segments")
        alias = f", registered @{seg.alias}" if seg is not None else ""
        console.print(f"  segments: k={p['segments']['k']}{alias}", highlight=False)
    for e in p["negative_icp"]["exclusion_criteria"][:5]:
        rates = f"{e['outcome']} {e['churn_or_loss_rate']:.0%} vs {e['baseline_rate']:.0%}"
        console.print(f"  exclusion: {e['rule']} ({rates})", highlight=False)
    console.print(
        f"  profile: {folder / 'icp_profile.md'} (also in the MLflow run under icp/)", highlight=False
    )


def _print_summary(summary: pd.DataFrame) -> None:
    table = Table(title="icpkit training summary", box=box.SIMPLE_HEAD)
    for header in (
        "outcome",
        "status",
        "rows",
        "positives",
        "model",
        "test AUC [95% CI]",
        "lift@10%",
        "ECE",
        "alias",
    ):
        table.add_column(header)
    notes = []
    for r in summary.to_dict("records"):
        trained = r["status"] == "trained"
        auc = f"{r['test_auc']:.3f} {r['auc_ci']}" if trained else "—"
        lift = f"{r['top_decile_lift']:.2f}" if trained else "—"
        ece = f"{r['ece']:.3f}" if trained else "—"
        table.add_row(
            r["outcome"],
            r["status"],
            f"{r['rows']:,}",
            f"{r['positives']:,}",
            r["model"],
            auc,
            lift,
            ece,
            r["alias"],
        )
        if isinstance(r.get("note"), str) and r["note"]:
            notes.append(f"{r['outcome']}: {r['note']}")
    console.print(table)
    for note in notes:
        console.print(f"  [yellow]note[/] {note}", highlight=False)
    skipped = int((summary["status"] == "skipped").sum())
    console.print(f"{len(summary) - skipped} outcome(s) trained, {skipped} skipped")


if __name__ == "__main__":
    run_main(main)
