"""Errors the services raise besides those in :mod:`cloud.errors`.

Kept here until ``cloud/errors.py`` (owned elsewhere) grows equivalents; the API maps them to
problems (422, 409, 410).
"""

from __future__ import annotations

from cloud.errors import ConflictError, HubError


class InvalidRequestError(HubError):
    """A request is well-formed but names something impossible (e.g. compartment 9 of 4)."""

    def __init__(self, message: str, *, loc: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.loc = loc  # where in the request, as in validation errors: ("body", "compartment")


class GoneError(HubError):
    """Something that existed has expired for good (e.g. a tracking link); the API says 410."""


class IllegalTransitionError(ConflictError):
    """A status change the parcel lifecycle does not allow (409); carries both states."""

    def __init__(self, *, parcel_id: object, current: str, wanted: str) -> None:
        super().__init__(f"parcel {parcel_id} cannot go from {current} to {wanted}")
        self.current = current
        self.wanted = wanted


class TrackingExpiredError(GoneError):
    """A tracking link that existed but has expired (410)."""

    def __init__(self) -> None:
        super().__init__("this tracking link has expired")


class WebhookTargetError(InvalidRequestError):
    """A webhook URL the hub refuses to call (422 at creation; a refused attempt at delivery):
    not http(s), credentials in it, or a host that is (or resolves to) an address inside the
    hub's own networks. ``url`` and ``reason`` say which and why."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"webhook URL refused: {reason}", loc=("body", "url"))
        self.url = url
        self.reason = reason


class WebhookSecretError(HubError):
    """A stored webhook secret cannot be opened: sealed under another key, or tampered with."""


class KpiDayOpenError(InvalidRequestError):
    """A KPI rebuild asked for a day that has not ended: today's figures stay computed on read."""

    def __init__(self, day: object) -> None:
        super().__init__(f"{day} has not ended yet: only closed days are materialised")
        self.day = day


class KpiRebuildRaceError(ConflictError):
    """Late data for the day kept arriving while its KPIs were rebuilt; try again later."""

    def __init__(self, day: object, *, attempts: int) -> None:
        super().__init__(f"the inputs of {day} changed during each of {attempts} rebuilds")
        self.day = day
        self.attempts = attempts
