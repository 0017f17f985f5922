"""Error type shared by the API layer and the cluster state."""

from __future__ import annotations


class ApiError(Exception):
    """An error answer of the PVE API.

    ``message`` becomes the HTTP reason phrase (first line) and, on PVE >= 8.3, the body's
    ``message`` (with the trailing newline PVE keeps).  ``empty_body`` is for the error paths that
    PVE answers without JSON (auth failures, CSRF, unreachable nodes).
    """

    def __init__(self, status: int, message: str, errors: dict | None = None, empty_body: bool = False):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors
        self.empty_body = empty_body


def param_error(errors: dict) -> ApiError:
    return ApiError(400, "Parameter verification failed.", errors=errors)


def perm_error(path: str, priv: str) -> ApiError:
    return ApiError(403, "Permission check failed (%s, %s)" % (path, priv))
