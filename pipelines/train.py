"""Retrain icpkit: ``python -m pipelines.train [--config pipelines/configs/default.yaml]``.

Reads the config, loads and validates the CRM, trains the four outcome models and the ICP,
logs everything to MLflow and prints a summary. The work itself lives in ``icpkit``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import time

import pandas as pd
from rich import box
from rich.table import Table

from icpkit.config import load_config
from icpkit.data.loading import load_crm
from icpkit.data.synthetic import ensure_synthetic_crm
from icpkit.registry import Tracker, resolve_tracking_uri
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

    _print_summary(summary)
    console.print(
        f"MLflow run {run_id} in {uri} — browse with: "
        f"mlflow ui --backend-store-uri {uri}\n"
        f"finished in {time.perf_counter() - started:.0f}s",
        highlight=False,
    )
    return 0


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
    # Piped output defaults to 80 columns, too narrow for the table; wrap only on wider needs.
    console.print(table, width=max(console.width, 120))
    for note in notes:
        console.print(f"  [yellow]note[/] {note}", highlight=False)
    skipped = int((summary["status"] == "skipped").sum())
    console.print(f"{len(summary) - skipped} outcome(s) trained, {skipped} skipped")


if __name__ == "__main__":
    run_main(main)
