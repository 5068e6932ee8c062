"""Errors of the MLflow edge that a user can act on (all :class:`icpkit.errors.ICPKitError`)."""

from __future__ import annotations

from icpkit.errors import ICPKitError


class TrackingUnavailableError(ICPKitError):
    """The MLflow tracking store cannot be reached or written (the message shows the masked URI)."""


class ModelIntegrityError(ICPKitError):
    """A registered model's files differ from the SHA-256 manifest recorded at registration.

    Parameters
    ----------
    message : str
        What differs and what to do.
    path : str or None
        The model-relative path of the first offending file, when one file is to blame.
    """

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class DatasetMismatchError(ICPKitError):
    """A current champion was trained on another dataset than the one about to be trained."""
