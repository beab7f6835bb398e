"""The bearer token every write needs.

``sitewatch serve`` creates it on first start in ``<home>/web-token`` (mode 0600, a 256-bit
random URL-safe string) and prints it once; later starts read it.  Writes send it as
``Authorization: Bearer <token>``.  A header the browser never adds by itself is what makes
the API CSRF-safe: a page on another site can make the browser send cookies, never this
header (and the server sends no CORS headers, so scripts elsewhere cannot read answers or
send it either).
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from sitewatch.errors import OutputError

TOKEN_FILE = "web-token"


def token_path(home: str | Path) -> Path:
    return Path(home) / TOKEN_FILE


def load_or_create_token(home: str | Path) -> tuple[str, bool]:
    """The home's token and whether it was created now.  A token file readable by others is
    refused (someone may have copied it): the message says how to fix it."""
    path = token_path(home)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(path), False
    except OSError as exc:
        raise OutputError(f"cannot create the web token {path}: {exc}") from None
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(token + "\n")
    return token, True


def _read(path: Path) -> str:
    try:
        st = path.stat()
        if st.st_mode & 0o077:
            raise OutputError(f"the web token {path} is readable by other users (mode "
                              f"{st.st_mode & 0o777:o}): run `chmod 600 {path}`, or delete it "
                              "to have a new one made")
        token = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise OutputError(f"cannot read the web token {path}: {exc}") from None
    if len(token) < 32:
        raise OutputError(f"the web token {path} is too short: delete it to have a new one "
                          "made")
    return token


def check_token(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``token`` (constant-time comparison)."""
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode(), token.encode())


__all__ = ["TOKEN_FILE", "check_token", "load_or_create_token", "token_path"]
