"""Keep credentials out of every message, tag, param and artifact icpkit writes.

A data source or tracking URI may carry a password (``postgresql://alice:S3cret@host/db``) or a
token in its query string (``...?token=abc``). Anything that leaves the process — an error
message, a log line, an MLflow tag or param, a file — goes through :func:`mask_secrets` first.
"""

from __future__ import annotations

import re

MASK = "***"

#: ``scheme://user:password@host`` -> ``scheme://user:***@host``.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@")
#: Query-string or key=value secrets: ``token=...``, ``password=...``, ``api_key=...`` and the like.
_KEYED = re.compile(
    r"(?P<key>\b(?:password|passwd|pwd|secret|token|access_token|auth|api[_-]?key|apikey|key|sig|"
    r"signature|credential|credentials|sas)\b\s*=\s*)(?P<value>[^&;\s'\"]+)",
    re.IGNORECASE,
)


def mask_secrets(text: str) -> str:
    """Return ``text`` with URL passwords and ``key=value`` secrets replaced by ``***``.

    Parameters
    ----------
    text : str
        Any message, URI or parameter value.

    Returns
    -------
    str
        The same text with credentials masked; text without credentials is returned unchanged.

    Examples
    --------
    >>> mask_secrets("postgresql://alice:S3cretPW@db:5432/crm")
    'postgresql://alice:***@db:5432/crm'
    >>> mask_secrets("https://host/crm.parquet?token=abc&x=1")
    'https://host/crm.parquet?token=***&x=1'
    """
    if not text:
        return text
    masked = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return _KEYED.sub(lambda m: f"{m['key']}{MASK}", masked)


def mask_any(value: object) -> object:
    """:func:`mask_secrets` applied to every string inside ``value`` (dicts, lists, tuples kept)."""
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, dict):
        return {k: mask_any(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(mask_any(v) for v in value)
    return value
