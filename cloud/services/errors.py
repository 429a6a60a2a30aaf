"""Errors the services raise besides those in :mod:`cloud.errors`.

Kept here until ``cloud/errors.py`` (owned elsewhere) grows an equivalent; the API maps it to 422.
"""

from __future__ import annotations

from cloud.errors import HubError


class InvalidRequestError(HubError):
    """A request is well-formed but names something impossible (e.g. compartment 9 of 4)."""

    def __init__(self, message: str, *, loc: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.loc = loc  # where in the request, as in validation errors: ("body", "compartment")


class GoneError(HubError):
    """Something that existed has expired for good (e.g. a tracking link); the API says 410."""
