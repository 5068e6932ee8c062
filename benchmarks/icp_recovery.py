"""Benchmark: whether the ICP recovers what the synthetic CRM planted, and stays silent on noise.

Run by hand (not a test):  .venv/bin/python -m benchmarks.icp_recovery [--accounts 20000] [--seed 7]
                           .venv/bin/python -m benchmarks.icp_recovery --world shaped [--accounts 20000]

On a synthetic CRM trained with the default config it prints, per outcome, where the three
truly most important attributes rank in the SHAP weights (target: all in the top 5) and the
weight share of the two pure-noise attributes (target: < 3 %); the adjusted Rand index of the
discovered segments against the planted ones (target: >= 0.7); whether the planted churn
drivers lead the negative ICP; and whether the tiers order every outcome. Then it shuffles
every label and checks the profile says the evidence is insufficient, with no trait, driver or
exclusion called significant.

``--world shaped`` runs the same kind of checks on the hand-made world of ``tests/worlds.py``
(text and yes/no drivers of winning, an ordinal whose middle value loses a little, a date, a
random flag across three planted clusters, a sales rep, an identifier, a censored renewal and an
offer term), scaled up to ``--accounts`` and trained with the default tuning budget.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
from sklearn.metrics import adjusted_rand_score

from benchmarks.common import Run, prepare, print_steps, print_versions, train
from icpkit.data.crm import CRMData
from icpkit.data.synthetic import NOISE_ATTRIBUTES
from icpkit.icp.result import ICPResult, build_icp


def _shuffle(crm: CRMData) -> None:
    crm.tables.update(crm.with_shuffled_labels(seed=0).tables)


def run_icp(run: Run) -> ICPResult:
    result = train(run)
    return run.timed(  # type: ignore[return-value]
        "build ICP", lambda: build_icp(run.crm, result, run.cfg, version="benchmark", dataset="synthetic CRM")
    )


def shaped_world(accounts: int, seed: int) -> None:
    """The checks on ``tests/worlds.py``'s world: what it planted, and what it must never claim."""
    import numpy as np

    from icpkit.config import config_from_dict, load_config
    from icpkit.data.loading import load_crm
    from icpkit.workflow import train_and_profile
    from tests.worlds import EXTRACT, make_world, world_config, write_world

    t0 = time.perf_counter()
    pd.set_option("display.width", 200)
    defaults = load_config(Path(__file__).resolve().parents[1] / "pipelines" / "configs" / "default.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "world"
        write_world(make_world(accounts, seed=seed), folder)
        raw = world_config(folder, Path(tmp) / "store")
        # The default budget, not the tests' tiny one.
        raw["training"] |= {"tuning": {"n_trials": defaults.training.tuning.n_trials},
                            "bootstrap_samples": defaults.training.bootstrap_samples}  # fmt: skip
        for key in ("max_boost_rounds", "shap_sample_rows"):
            raw["training"].pop(key, None)
        cfg = config_from_dict(raw)
        crm = load_crm(cfg.data, EXTRACT.date())
        t = time.perf_counter()
        run = train_and_profile(crm, cfg)
        took = time.perf_counter() - t
        p = run.icp.profile
        icp = [w["attribute"] for w in p["weights"]["icp"]]
        weights = {w["attribute"]: round(w["weight"], 1) for w in p["weights"]["icp"]}
        drivers = run.icp.tables["negative_icp_drivers"]
        significant = drivers[drivers["significant"].astype(bool)]
        censored = {c["attribute"] for c in p["negative_icp"]["censoring"].get("renewal", [])}
        rules = {r.attribute for r in [*run.icp.fitted.exclusions, *run.icp.fitted.penalty_rules]}
        ds = run.training.reports["win"].dataset
        cluster = np.random.default_rng(seed).integers(0, 3, accounts)  # make_world's first draw
        seg = run.icp.account_scores.set_index("account_id")["segment"]
        truth = pd.Series(cluster, index=[f"W{i:05d}" for i in range(accounts)]).reindex(seg.index)
        known = seg.notna().to_numpy()
        ari = adjusted_rand_score(truth[known], seg[known]) if known.any() else float("nan")
        checks = {
            "evidence sufficient": p["evidence"]["status"] == "sufficient",
            "industry and is_enterprise are ICP attributes": {"industry", "is_enterprise"} <= set(icp),
            "random_flag, owner, account_name never ICP attributes": not {"random_flag", "owner", "account_name"} & set(icp),
            "signup_date is an age, not a category": "signup_date" not in ds.X.columns and "days_since_signup_date" in ds.X.columns,
            "maturity (middle value) is no significant driver": significant[significant["attribute"] == "maturity"]["value"].astype(str).str.startswith(("<", ">=")).all(),
            "billing_frequency flagged as censoring, not a rule": "billing_frequency" in censored and "billing_frequency" not in rules,
            "usage_hours (planted churn driver) is a significant churn driver": bool(
                (significant["attribute"] == "usage_hours").any()
            ),
            "random_flag not a segment attribute": "random_flag" not in p["segments"].get("attributes", []),
            "penalty touches <= 25 % of the book": p["negative_icp"]["penalty"]["share_penalised"] <= 0.25,
        }  # fmt: skip
        print(f"\nshaped world (tests/worlds.py), {accounts:,} accounts, seed {seed}: trained + profiled in {took:.0f} s")
        print("ICP weights:", weights)
        print(f"segments: k={p['segments'].get('k')} on {p['segments'].get('attributes')}; "
              f"ARI vs the 3 planted clusters {ari:.3f} ({p['segments'].get('note', '')})")  # fmt: skip
        print("significant drivers:")
        print(significant[["outcome", "attribute", "value", "support", "bad_rate", "baseline_rate"]].head(8).round(3).to_string(index=False))
        print("scorecard validation:", {o: (round(v.get("scorecard_test_auc", float("nan")), 3), v.get("beats_chance"))
                                        for o, v in p["scorecard"]["validation"].items()})  # fmt: skip
        print("test AUC:", {o: (d.get("test_auc"), d.get("auc_95ci")) for o, d in p["evidence"]["by_outcome"].items()})
        for name, ok in checks.items():
            print(f"  {'PASS' if ok else 'FAIL'}  {name}")
        noise = crm.with_shuffled_labels(seed=5)
        sp = train_and_profile(noise, cfg).icp.profile
        ok = sp["evidence"]["status"] == "insufficient" and sp["weights"]["icp"] == []
        print(f"shuffled labels: evidence {sp['evidence']['status']}, ICP attributes {len(sp['weights']['icp'])}: "
              f"{'PASS' if ok else 'FAIL'}")  # fmt: skip
    print(f"\ntotal {time.perf_counter() - t0:.0f}s")
    print_versions()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--world", choices=["synthetic", "shaped"], default="synthetic")
    args = parser.parse_args()
    if args.world == "shaped":
        shaped_world(args.accounts, args.seed if args.seed != 7 else 0)
        return
    t0 = time.perf_counter()
    pd.set_option("display.width", 200)
    with tempfile.TemporaryDirectory() as tmp:
        run = prepare(Path(tmp) / "planted", args.accounts, args.seed)
        icp = run_icp(run)
        p = icp.profile
        truth = run.synthetic.meta
        rows = []
        for outcome, top3 in truth["top_attributes"].items():
            weights = pd.DataFrame(p["weights"]["by_outcome"].get(outcome, []))
            if weights.empty:
                rows.append({"outcome": outcome, "note": "not trained"})
                continue
            ranked = weights["attribute"].tolist()
            ranks = {a: ranked.index(a) + 1 if a in ranked else None for a in top3}
            noise = float(weights.loc[weights["attribute"].isin(NOISE_ATTRIBUTES), "weight"].sum())
            rows.append(
                {
                    "outcome": outcome,
                    "true top 3 (rank in weights)": ", ".join(f"{a} ({r})" for a, r in ranks.items()),
                    "top3_in_top5": all(r is not None and r <= 5 for r in ranks.values()),
                    "noise_weight_%": round(noise, 2),
                    "noise_below_3%": noise < 3.0,
                }
            )
        blended = pd.DataFrame(p["weights"].get("icp", []), columns=["attribute", "weight"])
        blended_noise = float(blended.loc[blended["attribute"].isin(NOISE_ATTRIBUTES), "weight"].sum())
        print(f"\nsynthetic CRM, {args.accounts:,} accounts, seed {args.seed}: attribute weights vs truth")
        print(pd.DataFrame(rows).to_string(index=False))
        print(f"combined fit weight of noise attributes: {blended_noise:.2f}%")

        seg_truth = run.synthetic.segments.set_index("account_id")["segment"]
        found = icp.account_scores.set_index("account_id")["segment"].astype("float").fillna(-1)
        ari = adjusted_rand_score(seg_truth.reindex(found.index).astype(str), found)
        print(f"\nsegments: k={p['segments'].get('k')} on {p['segments'].get('attributes')}")
        print(
            f"adjusted Rand index vs planted: {ari:.3f} (target >= 0.7): {'PASS' if ari >= 0.7 else 'FAIL'}"
        )

        drivers = icp.tables["negative_icp_drivers"]
        churn = drivers[
            (drivers["outcome"] == "churn") & drivers["significant"].astype(bool)
        ]
        planted = [d["attribute"] for d in truth["churn_drivers"]]
        lead = churn["attribute"].head(len(planted)).tolist()
        print(f"\nnegative ICP: planted churn drivers {planted}; leading confirmed churn drivers:")
        cols = ["attribute", "value", "support", "bad_rate", "baseline_rate", "lift", "excess_bad"]
        print(churn.head(6)[cols].round(3).to_string(index=False))
        print(f"planted drivers lead: {'PASS' if sorted(lead) == sorted(planted) else 'FAIL'}")
        print(f"\ntiers validated: {p['tiers'].get('validated')}; statements: {p['tiers'].get('statements')}; "
              f"notes: {p['tiers'].get('warnings')}")
        print(pd.DataFrame(p["tiers"]["table"]).round(3).to_string(index=False))
        print("\nfit scorecard on test periods:", {o: (round(v.get("scorecard_test_auc", float("nan")), 3), v.get("beats_chance"))
                                                  for o, v in p["scorecard"]["validation"].items()})  # fmt: skip

        shuffled = prepare(Path(tmp) / "shuffled", args.accounts, args.seed, mangle=_shuffle)
        sp = run_icp(shuffled).profile
        n_traits = len(sp["cohorts"].get("traits", []))
        n_drivers = len(sp["negative_icp"].get("drivers", []))
        n_excl = len(sp["negative_icp"].get("exclusions", []))
        ok = sp["evidence"]["status"] == "insufficient" and n_traits == n_excl == 0
        n_icps = len(sp.get("segments", {}).get("distinct_icps", []))
        print(
            f"\nshuffled labels: evidence {sp['evidence']['status']}; traits {n_traits}, significant drivers "
            f"{n_drivers}, exclusion criteria {n_excl}, distinct ICPs {n_icps}: {'PASS' if ok else 'FAIL'}"
        )
        print({o: (d.get("test_auc"), d.get("auc_95ci")) for o, d in sp["evidence"]["by_outcome"].items()})
    print_steps(run.steps + [(f"shuffled: {n}", s, m) for n, s, m in shuffled.steps])
    print(f"\ntotal {time.perf_counter() - t0:.0f}s")
    print_versions()


if __name__ == "__main__":
    main()
