"""Command-line interface: a thin layer over :mod:`kgrec.api`. One module per command group.

Importing this package costs only Typer: the command modules register on the app when its commands
are first looked at (:mod:`kgrec.cli.app`), and each command imports the heavy stack (pandas,
scikit-learn, torch) only when it runs, so ``kgrec --help`` and an input error answer at once. The
entry point with the Ctrl-C handling is :func:`kgrec.__main__.main` (also importable from here).
"""

from __future__ import annotations

from kgrec.__main__ import main
from kgrec.cli.app import COMMAND_MODULES, app

__all__ = ["COMMAND_MODULES", "app", "main"]
