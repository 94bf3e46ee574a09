"""Lazy module handles: every `kgrec` command imports the model registry, and torch/transformers take
seconds to import, so the teacher's modules touch them only on first use."""

from __future__ import annotations

import importlib


class Lazy:
    """Imports a module on first attribute access."""

    def __init__(self, module: str):
        self._module, self._mod = module, None

    def __getattr__(self, name: str):
        if self._mod is None:
            self._mod = importlib.import_module(self._module)
        return getattr(self._mod, name)


torch = Lazy("torch")
model = Lazy("kgrec.teacher.model")
soft = Lazy("kgrec.teacher.soft_prompt")
