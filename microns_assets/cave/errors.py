"""Errors of CAVE access, each saying what the user can do about it.

`retryable` tells the orchestration layer whether trying again could help: an outage can pass,
a bad token or an unknown table cannot.
"""

from __future__ import annotations

TOKEN_HELP = (
    "Get a token at https://global.daf-apis.com/auth/api/v1/create_token (or with "
    "`CAVEclient().auth.get_new_token()`), accept the MICrONS terms of service, and put it in "
    "the CAVE_TOKEN environment variable."
)


class CaveError(RuntimeError):
    """Base class of every CAVE access error raised by microns_assets."""

    retryable = False
    #: What a retryable error is announced as when the step is run again.
    outage = "CAVE unavailable"


class CaveAuthError(CaveError):
    """The server refused our credentials (401/403)."""


class UnknownDatastackError(CaveError):
    """The server has no datastack of that name."""


class UnknownVersionError(CaveError):
    """The version is not an int, or the server does not list it."""


class ExpiredVersionError(CaveError):
    """The version exists but has expired: CAVE serves it only as static dumps."""


class UnknownTableError(CaveError):
    """The table does not exist in that version."""


class CaveQueryError(CaveError):
    """The server rejected a query as malformed (4xx other than auth/not-found)."""


class CaveUnavailableError(CaveError):
    """The server stayed unreachable or kept failing after every HTTP retry."""

    retryable = True


class IncompleteResultError(CaveError):
    """A result could not be completed below the server's row cap; never stored as complete."""


class RowsLostError(CaveError):
    """The server answered other rows than it counts for the same query; nothing is stored."""
