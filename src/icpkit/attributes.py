"""What each attribute *is*: its role in the ICP and its kind of value.

A CRM export mixes four kinds of columns, and an ICP must not confuse them:

- **customer** traits (industry, employees, tech stack) — who the account is: the ICP;
- **offer** terms of the lead, deal or subscription (plan, contract, billing frequency, lead
  source) — what was sold and how: levers of the offer, reported apart from the ICP;
- **sales_org** columns (owner, seller, rep, manager) — who sold it: they may explain an outcome,
  but they describe the sales team, never the customer, so they are no trait and no exclusion;
- **identifier** columns (ids, names, emails) — never features.

Roles are inferred from the table and the name where it is plain, and can be declared in the
config (``attributes.roles``). Kinds are inferred from the values: numbers, categories, booleans
(two values such as yes/no or 0/1: a flag has values, not a scale) and dates (turned into an age
in days at each row's as-of time, never used as categories). Numeric codes can be declared
categorical (``attributes.categorical``).

:func:`prepare_attributes` applies the kinds to a frame the same way in training and scoring.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from icpkit.config import AttributesConfig

log = logging.getLogger(__name__)

Role = Literal["customer", "offer", "sales_org", "identifier"]
Kind = Literal["numeric", "categorical", "boolean", "date"]
ROLES: tuple[Role, ...] = ("customer", "offer", "sales_org", "identifier")

#: Name tokens that mark a column about the sales team rather than the customer.
SALES_ORG_TOKENS = frozenset(
    {"owner", "rep", "seller", "salesperson", "salesrep", "agent", "manager", "vp", "sdr", "bdr", "csm", "ae"}
)
#: Name tokens that mark an identifier.
IDENTIFIER_TOKENS = frozenset({"id", "uuid", "guid", "email", "phone", "url", "website", "domain", "name"})
#: Text spellings read as booleans (case-insensitive).
BOOLEAN_TEXT = frozenset({"true", "false", "yes", "no", "y", "n", "t", "f"})
#: A text column with at least this share of distinct values (and MIN_ID_ROWS rows) is an identifier.
ID_DISTINCT_SHARE = 0.9
MIN_ID_ROWS = 50
#: Prefix of the feature a date attribute becomes: days from the date to the row's as-of time.
DATE_FEATURE_PREFIX = "days_since_"


@dataclass(frozen=True)
class AttributeSpec:
    """One attribute: where it lives, its role, its kind, its ICP dimension and why.

    Parameters
    ----------
    name : str
        Column name in its table.
    table : str
        Contract table the column belongs to (``accounts``, ``leads``, ...).
    role : {"customer", "offer", "sales_org", "identifier"}
        See the module docstring.
    kind : {"numeric", "categorical", "boolean", "date"}
        How its values are read.
    dimension : str
        ICP dimension (firmographic, technographic, behavioral, business_need, growth, other).
    reason : str
        Why it has this role and kind (declared, or inferred from the name or values).
    true_value, false_value : str or None
        For booleans, the labels of the two values (the source's spelling, e.g. ``"Yes"`` /
        ``"No"``; ``"yes"`` / ``"no"`` for 0/1 numbers).
    """

    name: str
    table: str
    role: Role
    kind: Kind
    dimension: str
    reason: str
    true_value: str | None = None
    false_value: str | None = None

    @property
    def feature(self) -> str:
        """The feature column this attribute becomes (dates become an age in days)."""
        return f"{DATE_FEATURE_PREFIX}{self.name}" if self.kind == "date" else self.name

    @property
    def is_feature(self) -> bool:
        """Whether the attribute feeds the models (identifiers never do)."""
        return self.role != "identifier"

    def to_dict(self) -> dict[str, Any]:
        """The spec as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AttributeSpec:
        """Rebuild a spec from :meth:`to_dict` output."""
        return cls(**d)


def name_tokens(name: str) -> list[str]:
    """``"VP Name"`` -> ``["vp", "name"]``; ``"salesAgent"`` -> ``["sales", "agent"]``."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", str(name))
    return [t for t in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if t]


def _role_from_name(name: str) -> tuple[Role | None, str]:
    tokens = name_tokens(name)
    if SALES_ORG_TOKENS & set(tokens):
        return "sales_org", f"name says sales team ({', '.join(sorted(SALES_ORG_TOKENS & set(tokens)))})"
    if tokens and (tokens[-1] in IDENTIFIER_TOKENS or tokens[0] == "id"):
        return "identifier", f"name says identifier ({tokens[-1] if tokens[-1] in IDENTIFIER_TOKENS else 'id'})"
    return None, ""


_TRUTHY = frozenset({"true", "yes", "y", "t", "1"})


def _boolean_labels(values: pd.Series) -> tuple[str, str] | None:
    """(true label, false label) if the non-missing values are two boolean-like values, else None."""
    present = values.dropna()
    if present.empty:
        return None
    if pd.api.types.is_bool_dtype(present.dtype):
        return ("True", "False") if present.nunique() == 2 else None
    if pd.api.types.is_numeric_dtype(present.dtype):
        distinct = set(np.unique(present.to_numpy(dtype=float)).tolist())
        return ("yes", "no") if distinct == {0.0, 1.0} else None
    distinct = sorted({str(v).strip() for v in present.unique()})
    if len(distinct) != 2 or not {v.lower() for v in distinct} <= BOOLEAN_TEXT:
        return None
    true = [v for v in distinct if v.lower() in _TRUTHY]
    if len(true) != 1:
        return None
    return true[0], next(v for v in distinct if v != true[0])


def _kind(s: pd.Series, declared_categorical: bool) -> tuple[Kind, tuple[str, str] | None, str]:
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return "date", None, "values are dates"
    labels = _boolean_labels(s)
    if labels is not None:
        return "boolean", labels, "two values read as yes/no"
    if declared_categorical:
        return "categorical", None, "declared categorical (attributes.categorical)"
    if pd.api.types.is_numeric_dtype(s.dtype):
        return "numeric", None, "values are numbers"
    return "categorical", None, "values are text"


def _looks_like_id(s: pd.Series) -> bool:
    present = s.dropna()
    if len(present) < MIN_ID_ROWS or pd.api.types.is_numeric_dtype(present.dtype):
        return False
    return present.nunique() / len(present) >= ID_DISTINCT_SHARE


def infer_attribute(name: str, table: str, values: pd.Series, cfg: AttributesConfig) -> AttributeSpec:
    """Role, kind and dimension of one attribute column (declared in ``cfg`` or inferred)."""
    kind, labels, kind_reason = _kind(values, name in cfg.categorical)
    default: Role = "customer" if table in ("accounts", "account_history") else "offer"
    role, role_reason = _role_from_name(name)
    if role is None and kind == "categorical" and _looks_like_id(values):
        role, role_reason = "identifier", f"{ID_DISTINCT_SHARE:.0%}+ of its values are distinct"
    if name in cfg.roles:
        role, role_reason = cfg.roles[name], "declared (attributes.roles)"
    if role is None:
        role, role_reason = default, f"an attribute of {table}"
    return AttributeSpec(
        name=name,
        table=table,
        role=role,
        kind=kind,
        dimension=cfg.dimension_of(name),
        reason=f"{role_reason}; {kind_reason}",
        true_value=labels[0] if labels else None,
        false_value=labels[1] if labels else None,
    )


def infer_table_attributes(
    table: str, frame: pd.DataFrame, exclude: Iterable[str], cfg: AttributesConfig
) -> dict[str, AttributeSpec]:
    """Specs of every attribute column of one table (``exclude``: ids, times, labels)."""
    skip = set(exclude)
    return {c: infer_attribute(c, table, frame[c], cfg) for c in frame.columns if c not in skip}


# ---------------------------------------------------------------------------------------------
# applying kinds


def _as_boolean(s: pd.Series, spec: AttributeSpec) -> pd.Series:
    """Booleans as two text categories with the labels fixed at training (``"Yes"`` / ``"No"``).

    Any usual spelling maps onto them (True/False, 1/0, yes/no, y/n, t/f); other values are missing.
    """
    if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
        num = pd.to_numeric(s, errors="coerce").astype("float64")
        truthy, falsy = num == 1, num == 0
    else:
        text = s.astype("str").str.strip().str.lower()
        truthy = text.isin(list(_TRUTHY)).fillna(False)
        falsy = text.isin(["false", "no", "n", "f", "0"]).fillna(False)
    out = pd.Series(np.where(truthy, spec.true_value, spec.false_value), index=s.index, dtype=object)
    return out.where(truthy | falsy).astype("str")


def _days_since(s: pd.Series, as_of: pd.Series | pd.Timestamp) -> pd.Series:
    """Days from the date to the as-of time; a date after the as-of time was not known: missing."""
    dates = pd.to_datetime(s, errors="coerce")
    ref = pd.to_datetime(as_of) if isinstance(as_of, pd.Series) else pd.Timestamp(as_of)
    days = (ref - dates).dt.total_seconds() / 86400.0
    return days.where(days >= 0).astype("float64")


def prepare_attributes(
    frame: pd.DataFrame, specs: Mapping[str, AttributeSpec], as_of: pd.Series | pd.Timestamp
) -> pd.DataFrame:
    """Attribute columns as features: kinds applied, identifiers left out.

    Booleans become two text categories; declared numeric codes become text; dates become
    ``days_since_<name>`` measured at ``as_of`` (one time per row, or one for all). The same
    function prepares training rows and rows to score, so both read values alike.
    """
    out: dict[str, pd.Series] = {}
    for name, spec in specs.items():
        if not spec.is_feature or name not in frame.columns:
            continue
        s = frame[name]
        if spec.kind == "date":
            out[spec.feature] = _days_since(s, as_of)
        elif spec.kind == "boolean":
            out[spec.feature] = _as_boolean(s, spec)
        elif spec.kind == "categorical" and pd.api.types.is_numeric_dtype(s.dtype):
            num = pd.to_numeric(s, errors="coerce")
            text = num.map(lambda v: str(int(v)) if float(v).is_integer() else repr(float(v)), na_action="ignore")
            out[spec.feature] = text.astype("str")
        else:
            out[spec.feature] = s
    return pd.DataFrame(out, index=frame.index)


def describe_roles(specs: Iterable[AttributeSpec]) -> pd.DataFrame:
    """One row per attribute: table, role, kind, dimension, reason (for the profile)."""
    rows = [s.to_dict() for s in specs]
    cols = ["name", "table", "role", "kind", "dimension", "reason"]
    return pd.DataFrame(rows)[cols] if rows else pd.DataFrame(columns=cols)
