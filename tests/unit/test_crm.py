"""CRMData: the table fingerprint logged with every run."""

from __future__ import annotations

import pandas as pd

from icpkit.data.crm import CRMData


def test_fingerprint_is_kept_per_table_object_and_follows_a_replaced_table():
    accounts = pd.DataFrame({"account_id": ["a", "b"], "seats": [1.0, 2.0]})
    crm = CRMData({"accounts": accounts}, pd.Timestamp("2025-01-01"))
    first = crm.fingerprint()
    assert crm.fingerprint() == first
    assert CRMData({"accounts": accounts.copy()}, pd.Timestamp("2025-01-01")).fingerprint() == first
    crm.tables["accounts"] = accounts.assign(seats=[1.0, 3.0])
    changed = crm.fingerprint()
    assert changed["accounts"] != first["accounts"]
    crm.tables["accounts"] = accounts
    assert crm.fingerprint() == first
