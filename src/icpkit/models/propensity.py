"""The trained propensity model of one outcome, stored without pickles.

A :class:`PropensityModel` is a fitted :class:`~icpkit.models.preprocessing.Preprocessor`
(JSON), a scorer (a LightGBM text booster on its codes, or the coefficients of a logistic
regression on its design) and a Platt calibration (two numbers). The same object scores in
memory, after ``save``/``load`` and inside the MLflow pyfunc wrapper, so the registry returns
exactly the probabilities training measured.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.special import expit

from icpkit.models.permutation import ShuffledScores, shuffled_copies, shuffled_scores
from icpkit.models.preprocessing import Preprocessor
from icpkit.models.trees import BoosterText
from icpkit.serialization import MODEL_FILE, json_default

BOOSTER_FILE = "booster.txt"
FORMAT = "icpkit.PropensityModel/2"


@dataclass
class PropensityModel:
    """A calibrated propensity scorer for one outcome.

    LightGBM reads the encoder's codes; the logistic model reads its design (derived from the
    codes, so ``encoded=True`` means "codes" for both kinds).
    """

    outcome: str
    kind: Literal["lightgbm", "logistic"]
    encoder: Preprocessor
    booster: lgb.Booster | None = None
    #: Logistic coefficients, one per design column (``encoder.design_sources()``).
    coef: list[float] | None = None
    intercept: float = 0.0
    #: Platt scaling on the raw score: p = sigmoid(a * raw + b). Identity is a=1, b=0.
    calibration: tuple[float, float] = (1.0, 0.0)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        """The encoded feature columns the model reads, in order."""
        return self.encoder.columns_

    def encode(self, X: pd.DataFrame) -> pd.DataFrame:
        """The codes of raw rows ``X`` (what ``encoded=True`` expects)."""
        return self.encoder.encode(X)

    def raw_score(self, X: pd.DataFrame, encoded: bool = False) -> np.ndarray:
        """Uncalibrated log-odds."""
        Xenc = X if encoded else self.encode(X)
        if self.kind == "lightgbm":
            assert self.booster is not None
            return self.booster.predict(Xenc[self.feature_names], raw_score=True)
        assert self.coef is not None
        return self.encoder.design_array(Xenc) @ np.asarray(self.coef) + self.intercept

    def predict_proba(self, X: pd.DataFrame, encoded: bool = False) -> np.ndarray:
        """Calibrated probability of the outcome, one per row."""
        return self.calibrated(self.raw_score(X, encoded=encoded))

    def calibrated(self, raw: np.ndarray) -> np.ndarray:
        """The calibrated probabilities of raw scores (log-odds)."""
        a, b = self.calibration
        return expit(a * raw + b)

    def shuffled_raw_scores(self, codes: pd.DataFrame) -> ShuffledScores:
        """Raw scores of ``codes`` with some columns shuffled, for permutation importance.

        Returns ``score(columns, orders)``: the raw scores of ``codes`` with ``columns``
        (together; names the model does not read are ignored) put in each row order of
        ``orders``, stacked order by order; equal, to rounding, to ``raw_score`` of the shuffled
        frames. A LightGBM model rescores only the trees that split on ``columns`` (see
        :mod:`icpkit.models.trees`): the intact rows' score minus those trees' output, plus
        their output on the shuffled rows.
        """
        if self.kind != "lightgbm":
            return shuffled_scores(lambda X: self.raw_score(X, encoded=True), codes[self.feature_names])
        assert self.booster is not None
        position = {c: j for j, c in enumerate(self.feature_names)}
        values = codes[self.feature_names].to_numpy(dtype=float)
        text = BoosterText.of(self.booster)
        base = self.booster.predict(values, raw_score=True)

        def score(columns: list[str], orders: list[np.ndarray]) -> np.ndarray:
            j = [position[c] for c in columns if c in position]
            trees = text.subset(text.trees_splitting_on(j))
            if trees is None:  # no tree splits on them: shuffling changes nothing
                return np.tile(base, len(orders))
            rest, n = base - trees.predict(values, raw_score=True), len(values)
            out = np.empty(len(orders) * n)
            for r, copy in enumerate(shuffled_copies(values, j, orders)):
                out[r * n : (r + 1) * n] = rest + trees.predict(copy, raw_score=True)
            return out

        return score

    def contributions(self, X: pd.DataFrame, encoded: bool = False) -> tuple[pd.DataFrame, np.ndarray]:
        """Per-row, per-feature contributions to the raw score, and the base value per row.

        ``contributions.sum(axis=1) + base == raw_score`` exactly (TreeSHAP for LightGBM,
        coefficient x standardised value for the logistic model).
        """
        Xenc = X if encoded else self.encode(X)
        if self.kind == "lightgbm":
            assert self.booster is not None
            contrib = self.booster.predict(Xenc[self.feature_names], pred_contrib=True)
            return pd.DataFrame(contrib[:, :-1], columns=self.feature_names), contrib[:, -1]
        assert self.coef is not None
        terms = self.encoder.design_array(Xenc) * np.asarray(self.coef)
        # Sum each attribute's design columns (one-hot levels) back into one contribution.
        sources = np.asarray(self.encoder.design_sources(), dtype=object)
        onto = (sources[:, None] == np.asarray(self.feature_names, dtype=object)[None, :]).astype(float)
        return pd.DataFrame(terms @ onto, columns=self.feature_names), np.full(len(Xenc), self.intercept)

    # --- persistence (no pickles) ---------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the model as JSON (and the LightGBM booster as text) into ``directory``; returns it."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        spec: dict[str, Any] = {
            "format": FORMAT,
            "outcome": self.outcome,
            "kind": self.kind,
            "preprocessor": self.encoder.to_dict(),
            "calibration": list(self.calibration),
            "metadata": self.metadata,
        }
        if self.kind == "lightgbm":
            assert self.booster is not None
            self.booster.save_model(str(directory / BOOSTER_FILE))
            spec["booster_file"] = BOOSTER_FILE
        else:
            spec["coef"] = self.coef
            spec["intercept"] = self.intercept
        (directory / MODEL_FILE).write_text(json.dumps(spec, indent=1, default=json_default))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> PropensityModel:
        """Read a model :meth:`save` wrote; another format is a ``ValueError``."""
        directory = Path(directory)
        spec = json.loads((directory / MODEL_FILE).read_text())
        if spec.get("format") != FORMAT:
            raise ValueError(
                f"{directory / MODEL_FILE} is format {spec.get('format')!r}; this icpkit reads {FORMAT!r} "
                "(retrain to upgrade)"
            )
        model = cls(
            outcome=spec["outcome"],
            kind=spec["kind"],
            encoder=Preprocessor.from_dict(spec["preprocessor"]),
            calibration=tuple(spec["calibration"]),
            metadata=spec.get("metadata", {}),
        )
        if model.kind == "lightgbm":
            model.booster = lgb.Booster(model_file=str(directory / spec["booster_file"]))
        else:
            model.coef = list(spec["coef"])
            model.intercept = float(spec["intercept"])
        return model


