"""Benchmark: whether the ICP recovers what the synthetic CRM planted, and stays silent on noise.

Run by hand (not a test):  .venv/bin/python -m benchmarks.icp_recovery [--accounts 20000]

On a synthetic CRM trained with the default config it prints, per outcome, where the three
truly most important attributes rank in the SHAP weights (target: all in the top 5) and the
weight share of the two pure-noise attributes (target: < 3 %); the adjusted Rand index of the
discovered segments against the planted ones (target: >= 0.7); whether the planted churn
drivers lead the negative ICP; and whether the tiers order every outcome. Then it shuffles
every label and checks the profile says the evidence is insufficient, with no trait, driver or
exclusion called significant.
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
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
        blended = pd.DataFrame(p["weights"].get("blended_fit", []))
        blended_noise = float(blended.loc[blended["attribute"].isin(NOISE_ATTRIBUTES), "weight"].sum())
        print(f"\nsynthetic CRM, {args.accounts:,} accounts, seed {args.seed}: attribute weights vs truth")
        print(pd.DataFrame(rows).to_string(index=False))
        print(f"combined fit weight of noise attributes: {blended_noise:.2f}%")

        seg_truth = run.synthetic.segments.set_index("account_id")["segment"]
        found = icp.account_scores.set_index("account_id")["segment"]
        ari = adjusted_rand_score(seg_truth.reindex(found.index), found)
        print(f"\nsegments: k={p['segments']['k']} on {p['segments']['attributes']}")
        print(
            f"adjusted Rand index vs planted: {ari:.3f} (target >= 0.7): {'PASS' if ari >= 0.7 else 'FAIL'}"
        )

        drivers = icp.tables["negative_icp_drivers"]
        churn = drivers[
            (drivers["outcome"] == "churn") & drivers["significant"] & drivers["confirmed_by_model"]
        ]
        planted = [d["attribute"] for d in truth["churn_drivers"]]
        lead = churn["attribute"].head(len(planted)).tolist()
        print(f"\nnegative ICP: planted churn drivers {planted}; leading confirmed churn drivers:")
        cols = ["attribute", "value", "support", "bad_rate", "baseline_rate", "lift", "excess_bad"]
        print(churn.head(6)[[*cols, "model_contribution"]].round(3).to_string(index=False))
        print(f"planted drivers lead: {'PASS' if sorted(lead) == sorted(planted) else 'FAIL'}")
        print(f"\ntiers monotone: {p['tiers']['monotone']}; notes: {p['tiers']['warnings']}")
        print(pd.DataFrame(p["tiers"]["table"]).round(3).to_string(index=False))
        print("\nfit scorecard agreement:", p["scores"]["fit_scorecard_agreement"])

        shuffled = prepare(Path(tmp) / "shuffled", args.accounts, args.seed, mangle=_shuffle)
        sp = run_icp(shuffled).profile
        n_traits = len(sp["cohorts"].get("traits", []))
        n_drivers = len(sp["negative_icp"]["drivers"])
        n_excl = len(sp["negative_icp"]["exclusion_criteria"])
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
