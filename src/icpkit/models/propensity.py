"""The trained propensity model of one outcome, stored without pickles.

A :class:`PropensityModel` is an encoder (JSON), a scorer (a LightGBM text booster, or the
coefficients of a logistic regression with its imputation and scaling as JSON) and a Platt
calibration (two numbers). The same object scores in memory, after ``save``/``load`` and inside
the MLflow pyfunc wrapper, so the registry returns exactly the probabilities training measured.
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

from icpkit.models.encoding import FeatureEncoder

MODEL_FILE = "model.json"
BOOSTER_FILE = "booster.txt"


@dataclass
class LogisticDesign:
    """Numeric columns: median-imputed, standardised; categorical codes: one-hot (+ missing).

    Heavy-tailed non-negative numeric columns (skewness > 2, e.g. employees, revenue) enter as
    log1p: a linear model on raw counts is dominated by a few giants.
    """

    numeric: list[str] = field(default_factory=list)
    log_columns: list[str] = field(default_factory=list)
    medians: list[float] = field(default_factory=list)
    means: list[float] = field(default_factory=list)
    scales: list[float] = field(default_factory=list)
    #: categorical column -> number of codes (one-hot width is n_codes + 1 for missing)
    n_codes: dict[str, int] = field(default_factory=dict)

    def fit(self, Xenc: pd.DataFrame, encoder: FeatureEncoder) -> LogisticDesign:
        self.numeric = list(encoder.numeric_columns_)
        self.log_columns = [c for c in self.numeric if is_heavy_tailed(Xenc[c].to_numpy(dtype=float))]
        num = self._numeric(Xenc)
        med = np.nanmedian(num, axis=0) if len(num) else np.zeros(len(self.numeric))
        med = np.where(np.isnan(med), 0.0, med)
        filled = np.where(np.isnan(num), med, num)
        sd = filled.std(axis=0)
        self.medians = med.tolist()
        self.means = filled.mean(axis=0).tolist()
        self.scales = np.where(sd > 0, sd, 1.0).tolist()
        self.n_codes = {c: len(encoder.categories_[c]) for c in encoder.categorical_columns_}
        return self

    def column_groups(self) -> list[str]:
        """The source feature of each design column (for summing contributions back)."""
        groups = list(self.numeric)
        for col, n in self.n_codes.items():
            groups += [col] * (n + 1)
        return groups

    def _numeric(self, Xenc: pd.DataFrame) -> np.ndarray:
        num = Xenc[self.numeric].to_numpy(dtype=float).copy()
        for j, c in enumerate(self.numeric):
            if c in self.log_columns:
                num[:, j] = np.log1p(np.clip(num[:, j], 0, None))
        return num

    def transform(self, Xenc: pd.DataFrame) -> np.ndarray:
        num = self._numeric(Xenc)
        num = np.where(np.isnan(num), np.asarray(self.medians), num)
        parts = [(num - np.asarray(self.means)) / np.asarray(self.scales)]
        for col, n in self.n_codes.items():
            codes = Xenc[col].to_numpy(dtype=float)
            idx = np.where(np.isnan(codes), n, codes).astype(int)
            onehot = np.zeros((len(codes), n + 1))
            onehot[np.arange(len(codes)), idx] = 1.0
            parts.append(onehot)
        return np.hstack(parts) if parts else np.zeros((len(Xenc), 0))

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def is_heavy_tailed(x: np.ndarray) -> bool:
    """Non-negative, non-constant values with skewness above 2 (counts, money): model them in log."""
    x = np.asarray(x, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) < 3 or x.min() < 0 or x.std() == 0:
        return False
    return float(((x - x.mean()) ** 3).mean() / x.std() ** 3) > 2.0


@dataclass
class PropensityModel:
    """A calibrated propensity scorer for one outcome."""

    outcome: str
    kind: Literal["lightgbm", "logistic"]
    encoder: FeatureEncoder
    booster: lgb.Booster | None = None
    design: LogisticDesign | None = None
    coef: list[float] | None = None
    intercept: float = 0.0
    #: Platt scaling on the raw score: p = sigmoid(a * raw + b). Identity is a=1, b=0.
    calibration: tuple[float, float] = (1.0, 0.0)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        return self.encoder.columns_

    def encode(self, X: pd.DataFrame) -> pd.DataFrame:
        return self.encoder.transform(X)

    def raw_score(self, X: pd.DataFrame, encoded: bool = False) -> np.ndarray:
        """Uncalibrated log-odds."""
        Xenc = X if encoded else self.encode(X)
        if self.kind == "lightgbm":
            assert self.booster is not None
            return self.booster.predict(Xenc[self.feature_names], raw_score=True)
        assert self.design is not None and self.coef is not None
        return self.design.transform(Xenc) @ np.asarray(self.coef) + self.intercept

    def predict_proba(self, X: pd.DataFrame, encoded: bool = False) -> np.ndarray:
        """Calibrated probability of the outcome, one per row."""
        a, b = self.calibration
        return expit(a * self.raw_score(X, encoded=encoded) + b)

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
        assert self.design is not None and self.coef is not None
        design = self.design.transform(Xenc) * np.asarray(self.coef)
        frame = pd.DataFrame(design).T.groupby(self.design.column_groups(), sort=False).sum().T
        return frame[self.feature_names], np.full(len(Xenc), self.intercept)

    # --- persistence (no pickles) ---------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        spec: dict[str, Any] = {
            "format": "icpkit.PropensityModel/1",
            "outcome": self.outcome,
            "kind": self.kind,
            "encoder": self.encoder.to_dict(),
            "calibration": list(self.calibration),
            "metadata": self.metadata,
        }
        if self.kind == "lightgbm":
            assert self.booster is not None
            self.booster.save_model(str(directory / BOOSTER_FILE))
            spec["booster_file"] = BOOSTER_FILE
        else:
            assert self.design is not None
            spec["design"] = self.design.to_dict()
            spec["coef"] = self.coef
            spec["intercept"] = self.intercept
        (directory / MODEL_FILE).write_text(json.dumps(spec, indent=1, default=_json_default))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> PropensityModel:
        directory = Path(directory)
        spec = json.loads((directory / MODEL_FILE).read_text())
        model = cls(
            outcome=spec["outcome"],
            kind=spec["kind"],
            encoder=FeatureEncoder.from_dict(spec["encoder"]),
            calibration=tuple(spec["calibration"]),
            metadata=spec.get("metadata", {}),
        )
        if model.kind == "lightgbm":
            model.booster = lgb.Booster(model_file=str(directory / spec["booster_file"]))
        else:
            model.design = LogisticDesign(**spec["design"])
            model.coef = list(spec["coef"])
            model.intercept = float(spec["intercept"])
        return model


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer | np.floating):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")
