"""Searching a STAC API with pystac-client: paging, the ``datetime`` and ``intersects``
filters, ``query`` and max cloud cover, timeouts and retries, and de-duplication.

Requests go through one ``requests`` adapter that retries 5xx answers, 429 and timeouts with
exponential backoff, honouring ``Retry-After`` up to a cap (:class:`~.access.HttpPolicy`);
after the retry budget the search fails with one :class:`~sitewatch.errors.SourceError` line
naming the API (redacted).  The source's header, if any, is added by the adapter at send time
and only for the API's host.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from requests.adapters import HTTPAdapter
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry
from urllib3.util.retry import Retry

from sitewatch.errors import SourceError
from sitewatch.sources.access import Credentials, HttpPolicy, redact
from sitewatch.sources.records import Source
from sitewatch.times import iso

log = logging.getLogger(__name__)

_RETRY_STATUS = (429, 500, 502, 503, 504)


class _CappedRetry(Retry):
    """urllib3's Retry with ``Retry-After`` capped (a server asking for an hour gets
    :attr:`cap` seconds at most; the budget of tries is what ends the wait)."""

    cap: float = 30.0

    def get_retry_after(self, response: Any) -> float | None:
        after = super().get_retry_after(response)
        return None if after is None else min(after, self.cap)


def _retry(policy: HttpPolicy) -> Retry:
    cls = type("_Retry", (_CappedRetry,), {"cap": policy.retry_after_cap})
    return cls(total=policy.retries, connect=policy.retries, read=policy.retries,
               status=policy.retries, backoff_factor=policy.backoff,
               backoff_max=policy.backoff_max, status_forcelist=_RETRY_STATUS,
               allowed_methods=None, respect_retry_after_header=True, raise_on_status=False)


class _Adapter(HTTPAdapter):
    """Retries, plus the source's secret headers added at send time (after pystac-client
    has logged the request) and only for the host they belong to."""

    def __init__(self, creds: Credentials, policy: HttpPolicy):
        self._creds = creds
        super().__init__(max_retries=_retry(policy))

    def add_headers(self, request: Any, **kwargs: Any) -> None:
        if self._creds.applies_to(request.url):
            request.headers.update(self._creds.headers)


def _client(api: str, creds: Credentials, policy: HttpPolicy) -> Any:
    from pystac_client import Client
    from pystac_client.stac_api_io import StacApiIO

    io = StacApiIO(timeout=(policy.connect_timeout, policy.read_timeout), max_retries=None)
    adapter = _Adapter(creds, policy)
    io.session.mount("http://", adapter)
    io.session.mount("https://", adapter)
    return Client.open(api, stac_io=io, timeout=(policy.connect_timeout, policy.read_timeout))


def _reason(exc: BaseException, policy: HttpPolicy) -> str:
    """A short reason from a pystac-client / requests failure."""
    status = getattr(exc, "status_code", None)
    tries = policy.retries + 1
    if status:
        return f"HTTP {status} (after {tries} tries)" if status in _RETRY_STATUS else \
            f"HTTP {status}: {' '.join(str(exc).split())[:160]}"
    text = str(exc)
    if re.search(r"Read ?timed out|ReadTimeout", text):
        return f"no answer within {policy.read_timeout:g} s (after {tries} tries)"
    if re.search(r"ConnectTimeout|connect timeout", text, re.I):
        return f"connection timed out (after {tries} tries)"
    if re.search(r"Connection refused|NewConnectionError|Failed to establish", text):
        return f"cannot connect: connection refused (after {tries} tries)"
    if re.search(r"Name or service not known|nodename nor servname|getaddrinfo", text):
        return "cannot resolve the host name"
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return f"the server closed the connection (after {tries} tries)"
    return " ".join(text.split())[:200] or type(exc).__name__


def search_items(source: Source, geometry: BaseGeometry, *, start: datetime | None,
                 end: datetime | None, creds: Credentials, policy: HttpPolicy,
                 use_cloud: bool = True) -> list[dict[str, Any]]:
    """Every Item of ``source`` intersecting ``geometry`` (lon/lat) in [start, end], over all
    pages, as plain dicts in the API's order.  :class:`SourceError` (one line naming the API)
    when the API cannot be searched after the retries."""
    where = redact(source.api, creds.secrets)
    query: dict[str, Any] = dict(source.query)
    if use_cloud and source.max_cloud is not None:
        query["eo:cloud_cover"] = {**query.get("eo:cloud_cover", {}), "lte": source.max_cloud}
    dt = None
    if start is not None or end is not None:
        dt = f"{iso(start) if start else '..'}/{iso(end) if end else '..'}"
    items: list[dict[str, Any]] = []
    try:
        client = _client(source.api, creds, policy)
        search = client.search(collections=[source.collection], intersects=mapping(geometry),
                               datetime=dt, query=query or None, limit=policy.page_size)
        for n, page in enumerate(search.pages_as_dicts(), 1):
            feats = page.get("features")
            if not isinstance(feats, list):
                raise SourceError(f"STAC API {where}: page {n} of the search has no "
                                  "'features' list")
            items.extend(f for f in feats if isinstance(f, dict))
            log.debug("%s: page %d, %d items", where, n, len(feats))
    except SourceError:
        raise
    except Exception as exc:  # requests' errors, pystac-client's APIError, bad JSON...
        raise SourceError(f"STAC API {where}: search of {source.collection!r} failed: "
                          f"{redact(_reason(exc, policy), creds.secrets)}") from None
    return items


# --------------------------------------------------------------------------- de-duplication

_TILE_KEYS = (("s2:mgrs_tile",), ("mgrs:utm_zone", "mgrs:latitude_band", "mgrs:grid_square"),
              ("landsat:wrs_path", "landsat:wrs_row"), ("grid:code",))


def acquisition_key(item: Mapping[str, Any]) -> tuple[str, str, str | None]:
    """(platform, datetime to the second, tile) of an Item: two Items with the same key (and
    overlapping footprints, :func:`same_acquisition`) are one acquisition, whichever
    collection they are in.

    >>> acquisition_key({"properties": {"platform": "Sentinel-2B",
    ...     "datetime": "2024-01-02T02:03:04.567Z", "s2:mgrs_tile": "52SCG"}})
    ('sentinel-2b', '2024-01-02T02:03:04', '52SCG')
    """
    props = item.get("properties") or {}
    platform = str(props.get("platform") or props.get("constellation") or "").lower()
    when = str(props.get("datetime") or props.get("start_datetime") or "")[:19]
    tile = None
    for keys in _TILE_KEYS:
        if all(props.get(k) not in (None, "") for k in keys):
            tile = "-".join(str(props[k]) for k in keys)
            break
    return platform, when, tile


def footprint(item: Mapping[str, Any]) -> BaseGeometry | None:
    geom = item.get("geometry")
    if not isinstance(geom, dict):
        return None
    try:
        g = shape(geom)
    except (ValueError, TypeError, AttributeError, KeyError):
        return None
    return g if g.is_valid and not g.is_empty else None


def same_acquisition(a_key: tuple[str, str, str | None], a_geom: BaseGeometry | None,
                     b_key: tuple[str, str, str | None], b_geom: BaseGeometry | None) -> bool:
    """Same platform and second, and the same tile where both have one, else footprints
    that overlap by 90% or more of the smaller one."""
    if not a_key[0] or not a_key[1] or a_key[:2] != b_key[:2]:
        return False
    if a_key[2] is not None and b_key[2] is not None:
        return a_key[2] == b_key[2]
    if a_geom is None or b_geom is None:
        return False
    smaller = min(a_geom.area, b_geom.area)
    return smaller > 0 and a_geom.intersection(b_geom).area >= 0.9 * smaller


def unique_items(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """``items`` without repeats of one Item id (a catalogue may return an Item twice, on
    two pages)."""
    seen: set[str] = set()
    for it in items:
        key = str(it.get("id"))
        if key in seen:
            continue
        seen.add(key)
        yield it


__all__ = ["acquisition_key", "footprint", "same_acquisition", "search_items", "unique_items"]
