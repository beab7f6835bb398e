"""The command line: a thin layer over the library (click + rich)."""

__all__: list[str] = []
