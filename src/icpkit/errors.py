"""Errors a user can act on. The pipelines print their message; nobody sees a traceback."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class ICPKitError(Exception):
    """Base class: a problem the user can fix (bad config, bad data, not enough data)."""


class ConfigError(ICPKitError):
    """The configuration is invalid; the message names the key."""


class DataContractError(ICPKitError):
    """A table breaks the data contract.

    The message names the table, the column, the rule, how many rows break it and shows a few
    of them, so the fix can be made in the CRM export rather than guessed at.
    """

    def __init__(
        self,
        table: str,
        column: str | None,
        rule: str,
        n_rows: int = 0,
        examples: Sequence[dict[str, Any]] | None = None,
    ) -> None:
        self.table = table
        self.column = column
        self.rule = rule
        self.n_rows = n_rows
        self.examples = list(examples or [])
        where = f"table '{table}'" + (f", column '{column}'" if column else "")
        msg = f"{where}: {rule}"
        if n_rows:
            msg += f" ({n_rows} row{'s' if n_rows != 1 else ''})"
        if self.examples:
            msg += "\n  example rows:\n" + "\n".join(f"    {row}" for row in self.examples)
        super().__init__(msg)


class LeakageError(ICPKitError):
    """A feature is written after the outcome or predicts it almost perfectly."""


class InsufficientDataError(ICPKitError):
    """Too few rows or positives to train an outcome honestly."""


class FeatureMismatchError(ICPKitError, ValueError):
    """A frame to transform or score lacks columns the model was fitted on (or has the wrong width)."""
