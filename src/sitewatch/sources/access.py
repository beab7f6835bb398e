"""How sitewatch talks to a STAC source: credentials, URL signing, timeouts and retries, the
GDAL settings of remote reads, and redaction of secrets in messages.

Secrets never leave this module's records except on the wire: a header given through an
environment variable (``--header-env NAME``; the value ``Name: value``, or a bare token sent
as ``Authorization: Bearer <token>``) is sent by the HTTP adapter at send time (so that
pystac-client's debug log of request headers never holds it) and to GDAL through a private
header file (so that rasterio's debug log of its settings never holds it).  It goes only to
the API's host name (and asset URLs on that same host), is never stored in the catalogue, and
every error message passes through :func:`redact` (user:password in URLs, query strings
such as SAS tokens, and the header values themselves are replaced).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sitewatch.errors import MissingExtraError, SourceError

#: Environment variables that override the default HTTP policy (seconds, counts).
TIMEOUT_ENV, RETRIES_ENV = "SITEWATCH_STAC_TIMEOUT", "SITEWATCH_STAC_RETRIES"


@dataclass(frozen=True)
class HttpPolicy:
    """Timeouts and retries of the requests to a source.  5xx answers, 429 and timeouts are
    retried ``retries`` times with exponential backoff (``backoff`` x 2^n seconds, at most
    ``backoff_max``); a ``Retry-After`` header is honoured up to ``retry_after_cap``."""

    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retries: int = 4
    backoff: float = 0.5
    backoff_max: float = 20.0
    retry_after_cap: float = 30.0
    page_size: int = 100

    @classmethod
    def from_env(cls) -> HttpPolicy:
        """The default policy, with ``SITEWATCH_STAC_TIMEOUT`` (read timeout, s) and
        ``SITEWATCH_STAC_RETRIES`` applied where set."""
        kw: dict[str, Any] = {}
        for var, key, kind in ((TIMEOUT_ENV, "read_timeout", float),
                               (RETRIES_ENV, "retries", int)):
            raw = os.environ.get(var)
            if raw:
                try:
                    kw[key] = kind(raw)
                except ValueError:
                    raise SourceError(f"{var}={raw[:20]!r} is not a number") from None
        return cls(**kw)


@dataclass(frozen=True)
class Credentials:
    """Headers for one API host.  ``repr`` shows the header names only."""

    host: str | None = None
    headers: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(v for v in self.headers.values() if v)

    def applies_to(self, url: str) -> bool:
        """Whether ``url`` is on the host the headers are for."""
        return bool(self.headers) and urlsplit(url).hostname == self.host

    def __repr__(self) -> str:
        return f"Credentials(host={self.host!r}, headers={sorted(self.headers)!r})"


_HEADER = re.compile(r"([A-Za-z0-9-]+):\s*(.+)")


def credentials(api: str, header_env: str | None) -> Credentials:
    """The headers a source sends, read from the environment variable ``header_env``."""
    host = urlsplit(api).hostname
    if not header_env:
        return Credentials(host)
    raw = os.environ.get(header_env)
    if not raw or not raw.strip():
        raise SourceError(f"the environment variable {header_env} (the source's --header-env) "
                          "is not set; set it to a token or to 'Header-Name: value'")
    raw = raw.strip()
    m = _HEADER.fullmatch(raw)
    if m and " " not in m.group(1):
        return Credentials(host, {m.group(1): m.group(2).strip()})
    value = raw if raw.lower().startswith(("bearer ", "basic ", "token ")) else f"Bearer {raw}"
    return Credentials(host, {"Authorization": value})


_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")
_QUERY = re.compile(r"(?i)(\b(?:https?|s3|gs|az|/vsicurl/https?)[^\s'\"]*?)\?[^\s'\")]*")


def redact(text: object, secrets: tuple[str, ...] = ()) -> str:
    """``text`` without credentials: user:password in URLs, query strings (SAS tokens,
    signatures) and the ``secrets`` given are replaced.

    >>> redact("GET https://u:p@h.org/a.tif?sig=abc&se=1 failed")
    'GET https://***@h.org/a.tif?*** failed'
    >>> redact("token s3cret rejected", ("s3cret",))
    'token *** rejected'
    """
    out = _USERINFO.sub(r"\1***@", str(text))
    out = _QUERY.sub(r"\1?***", out)
    for s in secrets:
        if s:
            out = out.replace(s, "***")
            tail = s.split(" ", 1)[-1]  # "Bearer xyz": the token alone too
            if len(tail) >= 4:
                out = out.replace(tail, "***")
    return out


#: Hosts whose URLs the Planetary Computer signs (its Azure blob storage).
_SIGNED_HOSTS = (".blob.core.windows.net",)


def url_signer(needed: bool) -> Callable[[str], str]:
    """A function that signs an asset URL for reading: the Planetary Computer's SAS signing
    of its blob-storage URLs when ``needed`` (the ``stac-signing`` extra), else the URL as
    it is.  Signed URLs are used for the read only, never stored."""
    if not needed:
        return lambda href: href
    try:
        import planetary_computer  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise MissingExtraError(
            "this source's asset URLs must be signed (Microsoft Planetary Computer), which "
            "needs the 'planetary-computer' package: pip install 'sitewatch[stac-signing]'"
        ) from None

    def sign(href: str) -> str:
        if not (urlsplit(href).hostname or "").endswith(_SIGNED_HOSTS):
            return href
        try:
            return str(planetary_computer.sign(href))
        except Exception as exc:  # token service errors of any kind
            raise SourceError(f"cannot sign {redact(href)}: {redact(exc)}") from None

    return sign


#: GDAL settings of every remote window read: no directory listing, no sidecar probing,
#: COG-friendly range reads, bounded retries.
def gdal_options(policy: HttpPolicy) -> dict[str, Any]:
    return {
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF,.TIFF",
        "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
        "GDAL_HTTP_MULTIPLEX": "YES",
        "VSI_CACHE": "TRUE",
        "GDAL_HTTP_MAX_RETRY": str(policy.retries),
        "GDAL_HTTP_RETRY_DELAY": str(policy.backoff),
        "GDAL_HTTP_TIMEOUT": str(int(max(1, policy.read_timeout))),
        "GDAL_HTTP_CONNECTTIMEOUT": str(int(max(1, policy.connect_timeout))),
        "GDAL_PAM_ENABLED": "NO",  # never write .aux.xml beside anything
        # No process-wide cache of remote bytes: a truncated or failed answer must not be
        # served again from memory at the next try (``sitewatch watch`` runs for days).
        "CPL_VSIL_CURL_NON_CACHED": "/vsicurl/",
    }


@contextmanager
def gdal_header_file(creds: Credentials, url: str) -> Iterator[dict[str, str]]:
    """``{"GDAL_HTTP_HEADER_FILE": path}`` for reading ``url`` with the source's headers
    (a private temporary file, removed afterwards), or ``{}`` when none apply to it."""
    if not creds.applies_to(url):
        yield {}
        return
    fd, name = tempfile.mkstemp(prefix="sitewatch-headers-", suffix=".txt")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.writelines(f"{k}: {v}\n" for k, v in creds.headers.items())
        yield {"GDAL_HTTP_HEADER_FILE": name}
    finally:
        Path(name).unlink(missing_ok=True)


__all__ = ["RETRIES_ENV", "TIMEOUT_ENV", "Credentials", "HttpPolicy", "credentials",
           "gdal_header_file", "gdal_options", "redact", "url_signer"]
