"""The ``kgrec`` command: the console script (``kgrec = "kgrec.__main__:main"``) and ``python -m kgrec``.

This module imports nothing but the standard library, so the Ctrl-C handler below is in place before
Typer, pandas or torch start importing. Ctrl-C at any point after Python's own start-up (imports
included) is one line, ``kgrec: interrupted``, and exit code 130, after every ``finally`` block and
temporary-folder cleanup of the command has run (a half-written workspace folder is removed; see
:mod:`kgrec.fsatomic`).

Why the exit is :func:`os._exit` after the ``atexit`` handlers: CPython remembers a KeyboardInterrupt
that crossed C-level module code (Cython modules of pandas/pyarrow run snippets that way while they
import) even after kgrec caught it, and at shutdown would re-kill itself with SIGINT, so the caller
would see "killed by signal 2" instead of the documented 130 on some runs and not others.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Run the ``kgrec`` Typer app; Ctrl-C anywhere is one line and exit code 130."""
    try:
        from kgrec.cli.app import app

        app()
    except KeyboardInterrupt:  # before Typer took over (imports), or raised through it
        _interrupted()
    except SystemExit as exc:
        if exc.code == 130:  # Typer's answer to Ctrl-C inside a command (after its finally blocks ran)
            _interrupted()
        raise


def _interrupted() -> None:
    import atexit
    import os

    sys.stderr.write("\nkgrec: interrupted\n")
    try:
        atexit._run_exitfuncs()  # temporary folders and other exit-time cleanup, as a normal exit would
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe: nothing more to say
                pass
        os._exit(130)


if __name__ == "__main__":
    main()
