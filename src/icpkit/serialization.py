"""One home for turning icpkit's results into JSON: numpy scalars, NaN, dates, nested containers.

Every saved model folder holds a :data:`MODEL_FILE` whose ``"format"`` names what wrote it.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import pandas as pd

#: The JSON file of every saved icpkit model folder.
MODEL_FILE = "model.json"


def json_safe(o: Any) -> Any:
    """A JSON-safe copy of ``o``.

    NaN, inf and missing become ``None``, numpy values plain Python, dates ISO text, tuples lists;
    dicts and lists are walked.
    """
    if o is None or o is pd.NA or o is pd.NaT:
        return None
    if isinstance(o, dict):
        return {str(k): json_safe(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [json_safe(v) for v in o]
    if isinstance(o, np.ndarray):
        return [json_safe(v) for v in o.tolist()]
    if isinstance(o, bool | np.bool_):
        return bool(o)
    if isinstance(o, int | np.integer):
        return int(o)
    if isinstance(o, float | np.floating):
        return float(o) if math.isfinite(o) else None
    if isinstance(o, str):
        return o
    if isinstance(o, pd.Timestamp | dt.date):
        return str(o)
    return str(o)


def json_default(o: Any) -> Any:
    """``json.dumps(default=...)``: numpy scalars and arrays become plain Python, the rest text."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
