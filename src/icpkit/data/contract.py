"""The input data contract: which tables, which columns, which rules (see README / DESIGN.md)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TableContract:
    """What one CRM table must hold once renamed onto the contract."""

    name: str
    #: Unique row id; ``None`` for event tables (activities).
    id_column: str | None
    #: Columns that must exist.
    required: tuple[str, ...]
    #: Required columns that must be filled on every row.
    not_null: tuple[str, ...]
    #: Columns parsed as dates (empty allowed unless also in ``not_null``).
    date_columns: tuple[str, ...] = ()
    #: Columns parsed as numbers (empty allowed unless also in ``not_null``).
    numeric_columns: tuple[str, ...] = ()
    #: 0/1 label columns; empty means "not known yet" (scored, never trained on).
    label_columns: tuple[str, ...] = ()
    #: Optional columns with a contract meaning (typed like the others when present).
    optional: tuple[str, ...] = ()
    #: Whether ``account_id`` must exist in ``accounts``.
    references_accounts: bool = True
    #: Columns whose combination must be unique (tables keyed by more than one column).
    unique_together: tuple[str, ...] = ()

    @property
    def known_columns(self) -> tuple[str, ...]:
        """The required columns followed by the optional ones."""
        return self.required + self.optional


CONTRACT: dict[str, TableContract] = {
    "accounts": TableContract(
        name="accounts",
        id_column="account_id",
        required=("account_id",),
        not_null=("account_id",),
        references_accounts=False,
    ),
    "leads": TableContract(
        name="leads",
        id_column="lead_id",
        required=("lead_id", "account_id", "created_at"),
        not_null=("lead_id", "account_id", "created_at"),
        date_columns=("created_at",),
        label_columns=("converted",),
        optional=("converted",),
    ),
    "opportunities": TableContract(
        name="opportunities",
        id_column="opportunity_id",
        required=("opportunity_id", "account_id", "created_at", "closed_at"),
        not_null=("opportunity_id", "account_id", "created_at"),
        date_columns=("created_at", "closed_at"),
        numeric_columns=("amount",),
        label_columns=("won",),
        # Many public exports have no deal value; when present it is a number like arr.
        optional=("amount", "won"),
    ),
    "subscriptions": TableContract(
        name="subscriptions",
        id_column="subscription_id",
        required=("subscription_id", "account_id", "start_date", "end_date", "arr"),
        not_null=("subscription_id", "account_id", "start_date", "end_date", "arr"),
        date_columns=("start_date", "end_date"),
        numeric_columns=("arr", "expansion_arr"),
        label_columns=("renewed",),
        optional=("renewed", "expansion_arr"),
    ),
    "activities": TableContract(
        name="activities",
        id_column=None,
        required=("account_id", "occurred_at", "activity_type"),
        not_null=("account_id", "occurred_at", "activity_type"),
        date_columns=("occurred_at",),
    ),
    # Point-in-time account attributes: each row holds an account's attributes from valid_from
    # until the account's next row (features join it as of each row's time).
    "account_history": TableContract(
        name="account_history",
        id_column=None,
        required=("account_id", "valid_from"),
        not_null=("account_id", "valid_from"),
        date_columns=("valid_from",),
        unique_together=("account_id", "valid_from"),
    ),
}

#: Tables in the order they are loaded and validated (accounts first: others reference it).
TABLE_ORDER: tuple[str, ...] = (
    "accounts",
    "leads",
    "opportunities",
    "subscriptions",
    "activities",
    "account_history",
)

#: Which contract column carries the label that a config ``label`` rule derives, per table.
LABEL_COLUMN: dict[str, str] = {"leads": "converted", "opportunities": "won", "subscriptions": "renewed"}

#: Contract columns written when the outcome happens: never features, whatever the deny-list says.
POST_OUTCOME_COLUMNS: dict[str, tuple[str, ...]] = {
    "opportunities": ("closed_at",),
    "subscriptions": ("end_date", "expansion_arr"),
}
