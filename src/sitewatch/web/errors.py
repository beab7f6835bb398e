"""Errors as the API returns them: one JSON shape, statuses from one table.

Every error answer is ``{"error": {"status": 404, "code": "not_found", "message": "..."}}``.
:data:`STATUS_OF` maps sitewatch's error classes (most specific first) to a status and code;
anything else is a 500 whose message says nothing of the server's internals.
"""

from __future__ import annotations

from typing import Any

from sitewatch.errors import (
    BriefError,
    CollateralError,
    GridError,
    MissingExtraError,
    OutputError,
    SceneError,
    SiteError,
    SitewatchError,
    SourceError,
    StoreError,
)


class WebError(SitewatchError, ValueError):
    """A request the API refuses: ``status`` and ``code`` say how (see :data:`CODES`)."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code or CODES.get(status, "error")


class NotFound(WebError, LookupError):
    """An unknown site, scene, alert, part or file."""

    def __init__(self, message: str):
        super().__init__(404, message)


class AuthError(WebError, PermissionError):
    """A write without the token (401), or any write on a read-only server (403)."""


#: HTTP status -> the ``code`` word of the error body.
CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    421: "misdirected",
    422: "invalid",
    500: "internal",
    503: "unavailable",
}

#: sitewatch error class -> HTTP status, most specific first (the first match wins).
STATUS_OF: tuple[tuple[type[BaseException], int], ...] = (
    (WebError, 0),  # its own status
    (MissingExtraError, 503),
    (StoreError, 503),
    (SourceError, 503),
    (OutputError, 500),
    (SiteError, 422),
    (SceneError, 422),
    (GridError, 422),
    (CollateralError, 422),
    (BriefError, 422),
    (SitewatchError, 422),
)


def status_of(exc: BaseException) -> tuple[int, str]:
    """The (status, code) of an error raised while answering a request."""
    for cls, status in STATUS_OF:
        if isinstance(exc, cls):
            if isinstance(exc, WebError):
                return exc.status, exc.code
            return status, CODES[status]
    return 500, CODES[500]


def error_body(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    """The one shape of every error answer."""
    return {"error": {"status": status, "code": code or CODES.get(status, "error"),
                      "message": message}}


__all__ = ["CODES", "STATUS_OF", "AuthError", "NotFound", "WebError", "error_body",
           "status_of"]
