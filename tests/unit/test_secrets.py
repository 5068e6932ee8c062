"""Credentials are masked wherever icpkit writes text."""

from __future__ import annotations

import pytest

from icpkit.secrets import mask_any, mask_secrets


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("postgresql://alice:S3cretPW@db:5432/crm", "postgresql://alice:***@db:5432/crm"),
        ("https://h/x.parquet?token=abc123&n=1", "https://h/x.parquet?token=***&n=1"),
        ("mysql+pymysql://u:p%40ss@h/db", "mysql+pymysql://u:***@h/db"),
        ("cannot connect: api_key=XYZ failed", "cannot connect: api_key=*** failed"),
        ("sqlite:///crm.db", "sqlite:///crm.db"),
        ("/data/export", "/data/export"),
    ],
)
def test_mask_secrets_hides_passwords_and_tokens(raw, masked):
    assert mask_secrets(raw) == masked


def test_mask_any_walks_nested_values():
    out = mask_any({"source": "postgresql://a:pw@h/db", "n": 3, "l": ["x?token=t"]})
    assert out == {"source": "postgresql://a:***@h/db", "n": 3, "l": ["x?token=***"]}
    assert "pw" not in str(out)
