"""Where sitewatch keeps its state: one folder with the database and derived products.

Precedence: an explicit folder (the CLI's ``--home``), then the ``SITEWATCH_HOME``
environment variable, then the user's data directory (``~/.local/share/sitewatch`` on Linux).
Nothing is ever written to the current directory unless it is named.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

ENV_VAR = "SITEWATCH_HOME"


def resolve_home(explicit: str | Path | None = None) -> Path:
    """The home folder to use (not created here)."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser().resolve()
    return Path(platformdirs.user_data_dir("sitewatch", appauthor=False))

__all__ = ["ENV_VAR", "resolve_home"]
