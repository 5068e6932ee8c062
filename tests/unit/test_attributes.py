"""Attribute roles and kinds: inferred where the name or values make it plain, declarable."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icpkit.attributes import infer_attribute, prepare_attributes
from icpkit.config import AttributesConfig

CFG = AttributesConfig()


@pytest.mark.parametrize("name", ["Seller", "VP Name", "Manager Name", "sales_agent", "Lead Owner", "accountOwner"])
def test_sales_team_columns_are_sales_org(name):
    spec = infer_attribute(name, "accounts", pd.Series(["x", "y"] * 50), CFG)
    assert spec.role == "sales_org"


def test_identifiers_by_name_and_by_values():
    assert infer_attribute("account_name", "accounts", pd.Series(["a", "b"] * 50), CFG).role == "identifier"
    unique = pd.Series([f"v{i}" for i in range(100)])
    assert infer_attribute("reference", "accounts", unique, CFG).role == "identifier"
    assert infer_attribute("industry", "accounts", pd.Series(["a", "b"] * 50), CFG).role == "customer"


def test_entity_attributes_are_offer_terms_and_roles_can_be_declared():
    plan = pd.Series(["Basic", "Pro"] * 50)
    assert infer_attribute("plan", "subscriptions", plan, CFG).role == "offer"
    declared = AttributesConfig(roles={"plan_tier": "offer", "Seller": "customer"})
    assert infer_attribute("plan_tier", "accounts", plan, declared).role == "offer"
    assert infer_attribute("Seller", "accounts", plan, declared).role == "customer"


@pytest.mark.parametrize(
    ("values", "labels"),
    [(["True", "False"], ("True", "False")), (["Yes", "No"], ("Yes", "No")), ([1.0, 0.0], ("yes", "no"))],
)
def test_booleans_are_two_value_categories(values, labels):
    spec = infer_attribute("flag", "accounts", pd.Series(values * 30), CFG)
    assert spec.kind == "boolean" and (spec.true_value, spec.false_value) == labels


def test_boolean_spellings_map_onto_the_training_labels_at_scoring():
    spec = infer_attribute("soc2", "accounts", pd.Series(["Yes", "No"] * 30), CFG)
    frame = pd.DataFrame({"soc2": [True, False, "yes", "N", 1, None, "maybe"]}, dtype=object)
    out = prepare_attributes(frame, {"soc2": spec}, pd.Timestamp("2025-01-01"))["soc2"]
    assert out.tolist()[:5] == ["Yes", "No", "Yes", "No", "Yes"]
    assert out.isna().tolist()[5:] == [True, True]


def test_numeric_codes_declared_categorical_and_dates_become_ages():
    cfg = AttributesConfig(categorical=["region"])
    region = infer_attribute("region", "accounts", pd.Series([3.0, 7.0] * 30), cfg)
    signup = infer_attribute("signup", "accounts", pd.Series(pd.to_datetime(["2024-01-01", "2024-06-01"] * 30)), cfg)
    assert region.kind == "categorical" and signup.kind == "date" and signup.feature == "days_since_signup"
    frame = pd.DataFrame({"region": [3.0, np.nan], "signup": pd.to_datetime(["2024-01-01", "2025-03-01"])})
    out = prepare_attributes(frame, {"region": region, "signup": signup}, pd.Timestamp("2025-01-01"))
    assert out["region"].tolist()[0] == "3" and pd.isna(out["region"].iloc[1])
    assert out["days_since_signup"].iloc[0] == 366 and np.isnan(out["days_since_signup"].iloc[1])
