"""The public facade (``import sitewatch``) and the package's layout rules."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import sitewatch


def test_facade_names_resolve_to_their_modules():
    for name in sitewatch.__all__:
        if name == "__version__":
            continue
        obj = getattr(sitewatch, name)
        assert obj.__name__ == name, name
        assert obj.__module__.startswith("sitewatch."), name


def test_unknown_facade_name_is_an_attribute_error():
    try:
        sitewatch.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("no AttributeError")


def test_import_sitewatch_is_light():
    """The facade imports on first use: the CLI's start-up does not pay for the store."""
    code = ("import sys, sitewatch; print(sorted(m for m in sys.modules "
            "if m.startswith(('sitewatch.', 'rasterio', 'sqlalchemy', 'spacy'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def _modules() -> list[str]:
    return [m.name for m in pkgutil.walk_packages(sitewatch.__path__, "sitewatch.")]


def test_every_module_declares_all():
    missing = []
    for name in _modules():
        mod = importlib.import_module(name)
        if not hasattr(mod, "__all__"):
            missing.append(name)
    assert missing == []
