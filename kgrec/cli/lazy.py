"""Names the CLI needs before any command runs, without importing the heavy stack.

``kgrec --help``, ``kgrec prepare --help`` and an input error must answer in well under a second, so
command modules import :mod:`kgrec.api` (pandas, scikit-learn, torch, ...) only when a command runs:
``api`` here is a module proxy that imports ``kgrec.api`` on first attribute access. ``SOURCES`` are
the EHR loader names (checked against :data:`kgrec.cohort.LOADERS` by tests/test_hardening_cli.py).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

SOURCES = ("eicu", "mimic3", "mimic4", "omop", "synthea")


class LazyModule:
    """``LazyModule("kgrec.api").prepare`` imports ``kgrec.api`` at that moment, not before."""

    def __init__(self, name: str):
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)


api: Any = LazyModule("kgrec.api")

__all__ = ["SOURCES", "LazyModule", "api"]
