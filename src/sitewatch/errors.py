"""One root for every error sitewatch raises on purpose.

Each subclass also inherits the builtin that fits, so callers may catch either
(``except SiteError`` or ``except ValueError``).  Messages quote the offending input.
"""

from __future__ import annotations


class SitewatchError(Exception):
    """Root of all sitewatch errors: a user mistake or bad input, never a bug."""


class SiteError(SitewatchError, ValueError):
    """A site file or site definition is invalid, or a site is unknown."""


class SceneError(SitewatchError, ValueError):
    """An image cannot be read or catalogued (corrupt, no time, no overlap...)."""


class UndatedSceneError(SceneError):
    """An image whose acquisition time is in neither its metadata nor its file name."""


class GridError(SitewatchError, ValueError):
    """A scene cannot be put on a site grid."""


class StoreError(SitewatchError, RuntimeError):
    """The catalogue database cannot be opened or is in an unexpected state."""


class CollateralError(SitewatchError, ValueError):
    """A collateral report (news text, notice, note) cannot be read, or an indicator file
    is invalid."""


class BriefError(SitewatchError, ValueError):
    """A brief cannot be written for the period asked, or one of its figures cannot be drawn
    (the brief then says why in that figure's place)."""


class OutputError(SitewatchError, OSError):
    """A result (change product, figure, brief, PDF, plot) cannot be written or read back."""


class SourceError(SitewatchError, OSError):
    """A STAC imagery source cannot be searched or read (unreachable, HTTP errors after the
    retries, a bad answer), or is defined wrongly; the message names the API URL (credentials
    and query strings redacted)."""


class MissingExtraError(SitewatchError, ImportError):
    """An optional dependency (an extra such as ``plot``, ``pdf`` or ``learn``) is not
    installed; the message names the install command."""


__all__ = ["BriefError", "CollateralError", "GridError", "MissingExtraError", "OutputError",
           "SceneError", "SiteError", "SitewatchError", "SourceError", "StoreError",
           "UndatedSceneError"]
