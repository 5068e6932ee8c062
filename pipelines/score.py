"""Score the CRM: ``python -m pipelines.score --config X.yaml [--date D] [--output URL] ...``.

Loads the CRM with the config's mapping and validation, loads the ``@champion`` models (or the
versions named with ``--version``), scores every account and the open pipeline (open leads, open
opportunities, renewals due), applies manual overrides, updates the score history and writes the
run atomically to ``outputs/scores/<date>/`` (Parquet and CSV) or to a SQL database. The work
lives in :mod:`icpkit.scoring`; this file wires it and prints a short summary.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines._cli import PROJECT_ROOT, add_common_args, console, run_main, setup_logging

log = logging.getLogger("pipelines.score")

#: Extra entity columns copied beside the scores (when the table has them).
ENTITY_KEEP = {
    "open_leads": ("created_at",),
    "open_opportunities": ("created_at", "amount"),
    "renewals_due": ("start_date", "end_date", "arr"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipelines.score", description=__doc__)
    add_common_args(parser)
    parser.add_argument(
        "--version",
        dest="versions",
        action="append",
        default=[],
        metavar="N|OUTCOME=N",
        help="score with this icp-scorer version (N) or outcome model version (win=3); repeatable; "
        "default: the scoring.alias (@champion) of each model",
    )
    parser.add_argument(
        "--date",
        type=dt.date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="scoring date YYYY-MM-DD (default: extract date)",
    )
    parser.add_argument(
        "--output",
        metavar="FOLDER|URL",
        help="output folder or SQL URL, e.g. sqlite:///crm.db (default: outputs/scores)",
    )
    parser.add_argument(
        "--overrides",
        dest="overrides_file",
        metavar="FILE",
        type=Path,
        help="CSV of manual tiers: account_id,forced_tier,reason,author,date",
    )
    parser.add_argument(
        "--engine", choices=["pandas", "spark"], default="pandas", help="default: %(default)s"
    )
    parser.add_argument(
        "--spark-master", metavar="URL", help="Spark master URL (default: scoring.spark_master, local[2])"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    return run(args)


# ---------------------------------------------------------------------------------------------
# model loading: the one place that talks to the registry


@dataclass
class LoadedModel:
    """A registered model ready to score: its scorer, input spec and where it came from."""

    name: str
    version: str
    scorer: Any
    spec: Any
    uri: str


class PyfuncScorer:
    """A pyfunc model as a scorer: checked frame in, DataFrame out, same index."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, frame: Any) -> Any:
        import pandas as pd

        from icpkit.scoring.inputs import to_pyfunc_input

        out = self.model.predict(to_pyfunc_input(frame))
        if not isinstance(out, pd.DataFrame):
            out = pd.DataFrame({"prediction": list(out)})
        return out.set_axis(frame.index)


def load_model(tracking_uri: str, name: str, version: str | None, alias: str) -> LoadedModel | None:
    """Load ``name`` at ``version`` (or ``@alias``); ``None`` when the registry has no such model.

    The lead switches this to ``icpkit.registry.load_verified`` once it exists.
    """
    from icpkit import registry

    version = version or registry.champion_version(tracking_uri, name, alias)
    if version is None:
        return None
    uri = f"models:/{name}/{version}"
    loader = getattr(registry, "load_verified", None) or registry.load_pyfunc
    model = loader(tracking_uri, uri)
    return LoadedModel(name, str(version), PyfuncScorer(model), _input_spec(model), uri)


def _input_spec(model: Any) -> Any:
    """The model's :class:`InputSpec`; for models saved without one, an open spec from the signature."""
    from icpkit.scoring.inputs import InputSpec

    inner = getattr(model, "unwrap_python_model", lambda: None)()
    spec = getattr(getattr(inner, "scorer", None), "input_spec", None)
    if isinstance(spec, InputSpec):
        return spec
    if isinstance(spec, dict):
        return InputSpec.from_dict(spec)
    schema = model.metadata.get_input_schema()
    numeric = {"double", "float", "long", "integer", "boolean"}
    kinds = {
        c.name: "numeric" if getattr(c.type, "name", "") in numeric else "categorical" for c in schema.inputs
    }
    return InputSpec.from_kinds(kinds)


def _requested_versions(values: list[str]) -> dict[str, str]:
    """``["7", "win=3"]`` -> ``{"scorer": "7", "win": "3"}``."""
    from icpkit.errors import ICPKitError

    out: dict[str, str] = {}
    for v in values:
        key, _, num = v.rpartition("=")
        key = key or "scorer"
        if not num.isdigit():
            raise ICPKitError(f"--version expects N or OUTCOME=N (e.g. win=3), got {v!r}")
        out[key] = num
    return out


# ---------------------------------------------------------------------------------------------
# the run


def run(args: argparse.Namespace) -> int:
    """Everything after argument parsing (heavy imports start here)."""
    from icpkit.config import load_config
    from icpkit.data.loading import load_crm
    from icpkit.data.synthetic import ensure_synthetic_crm
    from icpkit.registry import resolve_tracking_uri
    from pipelines._cli import environ, parse_overrides

    cfg = load_config(args.config, parse_overrides(args.overrides))
    scoring_date = args.date or cfg.data.extract_date or dt.date.today()
    extract = cfg.data.extract_date or scoring_date
    uri = resolve_tracking_uri(cfg.tracking.tracking_uri, environ(), PROJECT_ROOT)
    models = _load_models(cfg, uri, _requested_versions(args.versions))
    if cfg.data.synthetic is not None:
        ensure_synthetic_crm(cfg.data.source, cfg.data.synthetic, extract)
    crm = load_crm(cfg.data, extract)
    engine = _engine(args, cfg, uri)
    try:
        tables, notes = score_crm(crm, cfg, scoring_date, models, engine)
    finally:
        engine.close()
    return _finish(args, cfg, scoring_date, models, tables, notes)


def _load_models(cfg: Any, uri: str, wanted: dict[str, str]) -> dict[str, LoadedModel | None]:
    """``icp-scorer`` (required) and each outcome model (``None`` when not registered)."""
    from icpkit.config import ALL_OUTCOMES
    from icpkit.errors import ICPKitError
    from icpkit.secrets import mask_secrets

    unknown = sorted(set(wanted) - {"scorer", *ALL_OUTCOMES})
    if unknown:
        raise ICPKitError(
            f"--version names unknown model(s) {unknown}; use N, or one of {list(ALL_OUTCOMES)}=N"
        )
    prefix, alias = cfg.tracking.model_prefix, cfg.scoring.alias
    models = {
        key: load_model(uri, f"{prefix}-{key}", wanted.get(key), alias) for key in ("scorer", *ALL_OUTCOMES)
    }
    if models["scorer"] is None:
        raise ICPKitError(
            f"no {prefix}-scorer@{alias} in the registry {mask_secrets(uri)}: "
            "train first (python -m pipelines.train)"
        )
    return models


def score_crm(crm: Any, cfg: Any, scoring_date: dt.date, models: dict, engine: Any) -> tuple[dict, list[str]]:
    """Score the accounts and every entity table; returns the scored tables and notes."""
    from icpkit.scoring.entities import ENTITY_TABLES, account_frame, entities_to_score

    windows = cfg.training.engagement_windows_days
    activities = crm.tables.get("activities")
    accounts_in = account_frame(crm["accounts"], activities, scoring_date, windows)
    scored = {
        "accounts": [engine.score(accounts_in, models["scorer"], ("account_id",), "account_id", "accounts")]
    }
    frames: dict[str, Any] = {"accounts": scored["accounts"][0].scores}
    notes: list[str] = []
    for name, rows in entities_to_score(crm.tables, scoring_date, cfg.scoring.renewal_horizon_days).items():
        kind = ENTITY_TABLES[name]
        present = {o: models[o] for o in kind.outcomes if models.get(o) is not None}
        if not present:
            notes.append(f"{name}: not scored, no {' / '.join(kind.outcomes)} model in the registry")
            continue
        frame, results = _score_entities(crm, rows, kind, present, engine, windows)
        frames[name], scored[name] = frame, results
    return {"frames": frames, "scored": scored}, notes


def _score_entities(crm: Any, rows: Any, kind: Any, models: dict, engine: Any, windows: list[int]) -> tuple:
    """One entity table scored by each of its outcome models, joined back on the entity id."""
    from icpkit.scoring.entities import entity_frame, expected_value

    frame = entity_frame(rows, crm["accounts"], crm.tables.get("activities"), kind.as_of_column, windows)
    keep = [kind.id_column, "account_id", *[c for c in ENTITY_KEEP[kind.output] if c in frame.columns]]
    keep = list(dict.fromkeys(keep))
    out = frame[keep].copy()
    accepted = None
    results = []
    for outcome, model in models.items():
        res = engine.score(frame, model, (kind.id_column,), kind.id_column, kind.output, outcome)
        scores = res.scores.rename(columns=lambda c, o=outcome: _prefixed(c, o, kind.id_column))
        out = out.merge(scores, on=kind.id_column, how="left", sort=False)
        ids = set(res.scores[kind.id_column])
        accepted = ids if accepted is None else accepted | ids
        results.append(res)
    out = out.loc[out[kind.id_column].isin(accepted or set())].reset_index(drop=True)
    if "win_propensity" in out and "amount" in out:
        out["expected_value"] = expected_value(out["win_propensity"], out["amount"])
    return out, results


def _prefixed(column: str, outcome: str, id_column: str) -> str:
    # Two models score renewals_due: reasons_up becomes renewal_reasons_up / expansion_reasons_up.
    return column if column == id_column or column.startswith(f"{outcome}_") else f"{outcome}_{column}"


def _finish(args: Any, cfg: Any, scoring_date: dt.date, models: dict, tables: dict, notes: list[str]) -> int:
    """Overrides, history, tier changes, outputs, summary."""
    from icpkit.errors import ICPKitError
    from icpkit.scoring.history import history_rows, tier_changes
    from icpkit.scoring.outputs import RunOutput, open_destination, stamp, version_label
    from icpkit.scoring.overrides import apply_overrides, read_overrides

    frames = tables["frames"]
    accounts = frames["accounts"]
    missing = [c for c in ("fit_score", "tier") if c not in accounts.columns]
    if missing:
        raise ICPKitError(f"the {models['scorer'].name} model returned no {', '.join(missing)} column")
    applied = []
    if args.overrides_file is not None:
        tiers = [*cfg.icp.tiers.cutoffs, "Weak"]
        accounts, applied = apply_overrides(accounts, read_overrides(args.overrides_file, tiers))
    else:
        accounts = accounts.assign(model_tier=accounts["tier"], override_reason=None).astype(
            {"override_reason": "str"}
        )
    frames["accounts"] = accounts
    versions = {m.name: m.version for m in models.values() if m is not None}
    dest = open_destination(_output_target(args, cfg), cfg.scoring.sql_table_prefix)
    hist = history_rows(
        accounts, scoring_date, version_label({models["scorer"].name: models["scorer"].version})
    )
    frames["tier_changes"] = tier_changes(dest.previous_scores(scoring_date), hist)
    frames["rejected"] = _rejected_table(tables["scored"])
    used = _versions_per_table(models)
    stamped = {n: stamp(frames[n], scoring_date, used.get(n, versions)) for n in _ordered(frames)}
    where = dest.write(RunOutput(scoring_date, stamped, hist))
    _print_summary(stamped, tables["scored"], applied, notes, where)
    return 0


def _ordered(frames: dict) -> list[str]:
    from icpkit.scoring.outputs import TABLES

    return [t for t in TABLES if t in frames]


def _versions_per_table(models: dict) -> dict[str, dict[str, str]]:
    from icpkit.scoring.entities import ENTITY_TABLES

    out = {"accounts": {models["scorer"].name: models["scorer"].version}}
    for name, kind in ENTITY_TABLES.items():
        out[name] = {models[o].name: models[o].version for o in kind.outcomes if models.get(o) is not None}
    return out


def _rejected_table(scored: dict) -> Any:
    import pandas as pd

    parts = []
    for table, results in scored.items():
        for res in results:
            parts.append(
                res.rejected.assign(table=table, model=res.model)[["table", "model", *res.rejected.columns]]
            )
    return pd.concat(parts, ignore_index=True).astype({"table": "str", "model": "str"})


def _output_target(args: Any, cfg: Any) -> str:
    if args.output:
        return args.output if "://" in args.output else str(Path(args.output).resolve())
    if cfg.scoring.output:
        target = cfg.scoring.output
        return target if "://" in target else str((Path(args.config).parent / target).resolve())
    return str(PROJECT_ROOT / "outputs" / "scores")


# ---------------------------------------------------------------------------------------------
# engines


def _engine(args: Any, cfg: Any, tracking_uri: str) -> Any:
    if args.engine == "spark":
        return _SparkEngine(cfg, tracking_uri, args.spark_master or cfg.scoring.spark_master)
    return _PandasEngine(cfg)


class _PandasEngine:
    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg

    def score(
        self, frame: Any, model: LoadedModel, keep: tuple, id_column: str, table: str, label: str = ""
    ) -> Any:
        from icpkit.scoring.batch import score_frame

        res = score_frame(
            frame, model.scorer, model.spec, chunk_rows=self.cfg.scoring.chunk_rows, keep=keep,
            id_column=id_column, max_unseen_share=self.cfg.scoring.max_unseen_share,
            table=f"{table} ({label})" if label else table,
        )  # fmt: skip
        res.model = model.name
        return res

    def close(self) -> None:
        pass


class _SparkEngine:
    """Writes each input to a temporary Parquet file and scores it with ``spark_udf``."""

    def __init__(self, cfg: Any, tracking_uri: str, master: str) -> None:
        import tempfile

        from icpkit.scoring.spark import spark_session

        self.cfg, self.tracking_uri = cfg, tracking_uri
        self.tmp = tempfile.TemporaryDirectory(prefix="icpkit-spark-")
        self.spark = spark_session(master)

    def score(
        self, frame: Any, model: LoadedModel, keep: tuple, id_column: str, table: str, label: str = ""
    ) -> Any:
        from icpkit.scoring.batch import INPUT_ROW
        from icpkit.scoring.spark import score_parquet_spark

        path = Path(self.tmp.name) / f"{table}-{label or 'input'}.parquet"
        rows = frame.reset_index(drop=True).assign(**{INPUT_ROW: range(len(frame))})
        # Spark reads microsecond timestamps only (pandas writes nanoseconds).
        rows.to_parquet(path, index=False, coerce_timestamps="us", allow_truncated_timestamps=True)
        res = score_parquet_spark(
            self.spark, path, model.uri, model.spec, tracking_uri=self.tracking_uri, keep=keep,
            id_column=id_column, max_unseen_share=self.cfg.scoring.max_unseen_share,
            table=f"{table} ({label})" if label else table,
        )  # fmt: skip
        res.model = model.name
        return res

    def close(self) -> None:
        self.spark.stop()
        self.tmp.cleanup()


# ---------------------------------------------------------------------------------------------
# summary


def _print_summary(stamped: dict, scored: dict, applied: list, notes: list[str], where: str) -> None:
    from rich import box
    from rich.table import Table

    table = Table(title="icpkit scoring summary", box=box.SIMPLE_HEAD)
    for header in ("table", "rows", "rejected", "unseen values"):
        table.add_column(header)
    for name, frame in stamped.items():
        results = scored.get(name, [])
        rejected = sum(len(r.rejected) for r in results)
        unseen = ", ".join(f"{c}: {n}" for r in results for c, n in sorted(r.unseen.items())) or "—"
        table.add_row(name, f"{len(frame):,}", f"{rejected:,}" if results else "—", unseen)
    console.print(table)
    for note in notes:
        console.print(f"  [yellow]note[/] {note}", highlight=False)
    for a in applied:
        console.print(f"  override {a.message}", highlight=False)
    console.print(
        f"{len(stamped.get('tier_changes', []))} tier change(s) since the previous run", highlight=False
    )
    console.print(f"written to {where}", highlight=False)


if __name__ == "__main__":
    run_main(main)
