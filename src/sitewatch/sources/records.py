"""The records of STAC sources: a site's :class:`Source`, and what a sync did
(:class:`SyncReport`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sitewatch.errors import SourceError
from sitewatch.fileio import is_safe_name


@dataclass(frozen=True)
class Source:
    """A STAC collection a site's scenes come from.  ``header_env`` names the environment
    variable holding a header or token (the value itself is never stored)."""

    site_id: str
    name: str
    api: str
    collection: str
    query: dict[str, Any] = field(default_factory=dict)
    max_cloud: float | None = None
    preset: str | None = None
    header_env: str | None = None
    created_at: str | None = None

    def __post_init__(self) -> None:
        if not is_safe_name(self.name):
            raise SourceError(f"source name {self.name!r} is not a plain name (letters, "
                              "digits, _ - ., starting with a letter or digit)")
        if not self.api.lower().startswith(("http://", "https://")):
            raise SourceError(f"STAC API URL {self.api[:200]!r} is not an http(s) URL")
        if not self.collection.strip():
            raise SourceError("a STAC source needs a collection")
        if self.max_cloud is not None and not 0 <= self.max_cloud <= 100:
            raise SourceError(f"max cloud {self.max_cloud} is not a percentage (0-100)")
        if self.header_env is not None and not self.header_env.replace("_", "").isalnum():
            raise SourceError(f"--header-env {self.header_env[:60]!r} is not an environment "
                              "variable name")

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ItemNote:
    """An Item (or a whole source, ``item`` None) that a sync skipped or that failed, and
    why, in one line."""

    source: str
    item: str | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __str__(self) -> str:
        return f"{self.source}/{self.item}: {self.reason}" if self.item else \
            f"{self.source}: {self.reason}"


@dataclass(frozen=True)
class SyncReport:
    """What :func:`~sitewatch.sources.sync.sync_site` did for one site.

    ``added``: ids of the scenes catalogued by this sync; ``already``: Items catalogued by an
    earlier sync (as a scene, as a duplicate of one, or skipped for a lasting reason), which
    were not read again; ``skipped``: Items left out for a reason that stays (no overlap with
    the site, a duplicate acquisition, too cloudy, no usable asset); ``failed``: Items (or
    sources, ``item`` None) that could not be read this time; the next sync tries them again.
    """

    site_id: str
    sources: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    already: int = 0
    skipped: tuple[ItemNote, ...] = ()
    failed: tuple[ItemNote, ...] = ()

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.failed

    def summary(self) -> str:
        """One line: ``sync sohae: 3 added, 12 already, 1 skipped, 0 failed (2 sources)``,
        then the first failure's reason when there is one."""
        line = (f"sync {self.site_id}: {len(self.added)} added, {self.already} already, "
                f"{len(self.skipped)} skipped, {len(self.failed)} failed "
                f"({len(self.sources)} source{'s' if len(self.sources) != 1 else ''})")
        if self.failed:
            more = f" (+{len(self.failed) - 1} more)" if len(self.failed) > 1 else ""
            line += f"; {self.failed[0]}{more}"
        return line

    def to_dict(self) -> dict[str, Any]:
        return {"site": self.site_id, "sources": list(self.sources), "added": list(self.added),
                "already": self.already, "skipped": [n.to_dict() for n in self.skipped],
                "failed": [n.to_dict() for n in self.failed], "ok": self.ok,
                "summary": self.summary()}


__all__ = ["ItemNote", "Source", "SyncReport"]
