"""Command-line interface: a thin layer over :mod:`kgrec.api`. One module per command group.

Importing this package costs only Typer: the command modules register on the app when its commands
are first looked at (:mod:`kgrec.cli.app`), and each command imports the heavy stack (pandas,
scikit-learn, torch) only when it runs, so ``kgrec --help`` and an input error answer at once. Ctrl-C
at any point after that, imports included, is one line and exit code 130.
"""

from __future__ import annotations

import sys

from kgrec.cli.app import COMMAND_MODULES, app


def main() -> None:
    """The ``kgrec`` command. Ctrl-C, during the imports or a command, is one line and exit code 130."""
    try:
        app()
    except KeyboardInterrupt:  # before Typer took over (command imports): no traceback
        _interrupted()
    except SystemExit as exc:
        if exc.code == 130:  # Typer's answer to Ctrl-C inside a command (after its finally blocks ran)
            _interrupted()
        raise


def _interrupted() -> None:
    sys.stderr.write("\nkgrec: interrupted\n")
    sys.exit(130)


__all__ = ["COMMAND_MODULES", "app", "main"]
