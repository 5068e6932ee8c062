"""A propensity model as consumers use it: raw rows in, calibrated propensity and reasons out.

A registered ``icp-<outcome>`` model takes the entity row in contract form (a lead, an
opportunity or a subscription term with its own columns), its account's attributes and its
engagement counts, and builds the point-in-time features inside with the training code
(:class:`icpkit.features.FeatureSpec`), so a consumer never rebuilds features by hand.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from icpkit.features import FeatureSpec
from icpkit.models.explain import explain
from icpkit.models.propensity import PropensityModel

TOP_REASONS = 3


class OutcomeScorer:
    """``predict(rows)`` -> ``<outcome>_propensity``, ``reasons_up``, ``reasons_down`` (same index)."""

    def __init__(self, model: PropensityModel) -> None:
        spec = model.metadata.get("feature_spec")
        if not spec:
            raise ValueError(f"the {model.outcome} model was saved without its feature spec")
        self.model = model
        self.spec = FeatureSpec.from_dict(spec)

    @property
    def output_column(self) -> str:
        return f"{self.model.outcome}_propensity"

    def input_columns(self) -> list[str]:
        return self.spec.input_columns()

    def features(self, rows: pd.DataFrame) -> pd.DataFrame:
        # Rows to score are current: their account snapshot is as of now, so nothing is masked.
        return self.spec.features(rows, reference_date=None)

    def predict(self, rows: pd.DataFrame, reasons: bool = True) -> pd.DataFrame:
        X = self.features(rows)
        out = pd.DataFrame({self.output_column: self.model.predict_proba(X)}, index=rows.index)
        if reasons:
            up, down = self.reasons(X)
            out["reasons_up"], out["reasons_down"] = up, down
        return out

    def reasons(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Top attributes pushing each row's log-odds up and down, in business terms.

        Contributions of one attribute's features (all windows of an activity type) are summed;
        a reason reads ``"industry = Retail (+0.42 log-odds)"``.
        """
        if not len(X):
            return np.array([], dtype=object), np.array([], dtype=object)
        expl = explain(self.model, X)
        source = self.spec.feature_source
        names = [source.get(f, f) for f in expl.feature_names]
        frame = pd.DataFrame(expl.values, columns=names).T.groupby(level=0, sort=False).sum().T
        attrs = list(frame.columns)
        values = {a: self._display(X, a) for a in attrs}
        contrib = frame.to_numpy()
        out = []
        for sign in (1.0, -1.0):
            order = np.argsort(-sign * contrib, axis=1, kind="stable")[:, :TOP_REASONS]
            texts = []
            for r in range(len(contrib)):
                parts = [
                    f"{attrs[j]} = {values[attrs[j]][r]} ({contrib[r, j]:+.2f} log-odds)"
                    for j in order[r]
                    if sign * contrib[r, j] >= 0.01
                ]
                texts.append("; ".join(parts))
            out.append(np.asarray(texts, dtype=object))
        return out[0], out[1]

    def _display(self, X: pd.DataFrame, attribute: str) -> list[str]:
        cols = [c for c, a in self.spec.feature_source.items() if a == attribute and c in X.columns]
        if len(cols) != 1:
            return ["(activity)"] * len(X) if attribute.startswith("activity") else ["—"] * len(X)
        s = X[cols[0]]
        if pd.api.types.is_numeric_dtype(s.dtype):
            return ["missing" if pd.isna(v) else f"{v:,.4g}" for v in s.to_numpy()]
        return ["missing" if pd.isna(v) else str(v) for v in s.to_numpy()]
