"""Every error class sitewatch defines is a SitewatchError and a builtin (errors.py's rule),
so callers may catch either."""

from __future__ import annotations

import builtins
import importlib
import inspect
import pkgutil

import pytest

import sitewatch
from sitewatch.errors import SitewatchError
from sitewatch.watch.pipeline import PipelineError, RunParams
from sitewatch.watch.sinks import SinkError, WebhookSink

BUILTIN_ERRORS = tuple(v for v in vars(builtins).values() if isinstance(v, type)
                       and issubclass(v, BaseException) and v not in (Exception, BaseException))


def _error_classes():
    for mod in pkgutil.walk_packages(sitewatch.__path__, "sitewatch."):
        m = importlib.import_module(mod.name)
        for _, cls in inspect.getmembers(m, inspect.isclass):
            # A KeyboardInterrupt subclass is a stop signal, not an error (fleet's _Stopped
            # asks a run to end after its scene in hand): no handler of errors may catch it.
            if (issubclass(cls, BaseException) and cls.__module__ == m.__name__
                    and not issubclass(cls, KeyboardInterrupt)):
                yield cls


def test_every_sitewatch_error_also_inherits_a_builtin():
    classes = set(_error_classes())
    assert {PipelineError, SinkError} <= classes
    for cls in classes - {SitewatchError}:
        assert issubclass(cls, SitewatchError), cls
        assert issubclass(cls, BUILTIN_ERRORS), f"{cls.__name__} inherits no builtin error"


def test_pipeline_and_sink_errors_are_value_errors():
    with pytest.raises(ValueError, match="min_usable"):
        RunParams(min_usable=2.0)
    with pytest.raises(ValueError, match="webhook URL"):
        WebhookSink("ftp://example.org/x")


def test_the_root_is_never_raised_bare():
    """A bare SitewatchError has no builtin to catch it by: raise the subclass that fits."""
    from pathlib import Path

    src = Path(sitewatch.__file__).parent
    bare = [f"{p.relative_to(src)}:{i}" for p in src.rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1)
            if "raise SitewatchError(" in line]
    assert bare == []
