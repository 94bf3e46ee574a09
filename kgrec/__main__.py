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
    _install_sigint()
    try:
        from kgrec.cli.app import app

        app()
    except KeyboardInterrupt:  # before Typer took over (imports), or raised through it
        _interrupted()
    except SystemExit as exc:
        if exc.code == 130:  # Typer's answer to Ctrl-C inside a command (after its finally blocks ran)
            _interrupted()
        raise


def _swallowing(frame) -> bool:
    """Whether an exception raised in ``frame`` would be printed and ignored by CPython instead of
    propagating: a ``__del__`` method or importlib's module-lock weakref callback (seen while pandas
    imports: "Exception ignored in: <function _get_module_lock.<locals>.cb>", and the command went on)."""
    code = frame.f_code if frame is not None else None
    return code is not None and (code.co_name == "__del__" or (code.co_name == "cb" and "importlib" in code.co_filename))


def _install_sigint() -> None:
    """Ctrl-C raises KeyboardInterrupt as Python's own handler does, except inside code that would swallow
    it (:func:`_swallowing`): there it is raised again 5 ms later, until it lands where it propagates.
    It also tells :mod:`kgrec.fsatomic`, whose commit points then refuse to publish, in case a library
    swallows the interrupt all the same (C code that clears any error). A
    SIGINT that was ignored when kgrec started (a background job) or handled by an embedding program is
    left as it is."""
    import signal

    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return
    from kgrec import fsatomic  # standard library only; imported now, never inside the handler

    def raise_where_it_propagates(signum, frame):
        fsatomic.request_interrupt()
        if _swallowing(frame):
            signal.signal(signal.SIGALRM, raise_where_it_propagates)
            signal.setitimer(signal.ITIMER_REAL, 0.005)
            return
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, raise_where_it_propagates)


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
