"""Options and output shared by every command: workspace, data folder, --json, error handling, and the
stage lines a long command prints (:func:`stage_progress`)."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from kgrec.errors import KgrecError

# Human output goes to stderr so that stdout carries only --json.
console = Console(stderr=True, emoji=False)  # user text such as ":x:" is printed as typed

Workspace = Annotated[
    Path,
    typer.Option(
        "--workspace",
        "-w",
        help="Study folder: cohort, graph, models and reports of one study live here.",
        envvar="KGREC_WORKSPACE",
    ),
]
DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Open-data root (holds mappings/, kg/, ddi/ and the EHR folders). Default: $KGREC_DATA.",
        show_default=False,
    ),
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout, nothing else.")]

DEFAULT_WORKSPACE = Path("kgrec-workspace")


def resolve_data_dir(data_dir: Path | None) -> Path:
    """--data-dir, else $KGREC_DATA; a clear error when neither is set."""
    if data_dir is not None:
        return data_dir
    env = os.environ.get("KGREC_DATA")
    if env:
        return Path(env)
    raise KgrecError("no data folder: pass --data-dir DIR or set KGREC_DATA (e.g. export KGREC_DATA=../shared/data)")


def show(*objects: Any, **kw: Any) -> None:
    """A result (table, tree, rationale text) on stdout; progress, notes and errors stay on stderr
    (``console``). On a terminal it fits the terminal; redirected or piped it is never hard-wrapped:
    tables as wide as their content, values whole, no colour codes."""
    tty = sys.stdout.isatty()
    out = Console(file=sys.stdout, emoji=False, width=None if tty else 100_000, soft_wrap=not tty)
    out.print(*objects, **kw)


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=_json_default) + "\n")
    sys.stdout.flush()


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def debug_mode() -> bool:
    """``KGREC_DEBUG=1`` (or ``kgrec --debug``): failures show their Python traceback."""
    return os.environ.get("KGREC_DEBUG", "").strip() not in ("", "0")


def fail(message: str, code: int = 2) -> None:
    """Print ``error: <message>`` on stderr, the message verbatim (no markup, no emoji codes), and exit."""
    console.print("error: ", style="bold red", end="", highlight=False)
    console.print(message, markup=False, emoji=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code=code)


def handle_errors(fn: Callable) -> Callable:
    """The error boundary of every command: kgrec's input errors and the expected failures of the system
    (I/O, permissions, a full disk, a malformed file, a resource limit: :func:`kgrec.errors.describe`) are
    one line on stderr and exit code 2; anything else is a bug, reported in one line with exit code 1 and
    the way to see its traceback (``KGREC_DEBUG=1``). Ctrl-C stays 130 (:mod:`kgrec.__main__`)."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        from kgrec.errors import describe
        from kgrec.logs import quiet_third_party

        quiet_third_party()  # every command: library warnings that tell a user nothing stay off
        try:
            return fn(*args, **kwargs)
        except KgrecError as exc:
            if debug_mode():
                raise
            fail(str(exc))
        except (typer.Exit, typer.Abort, KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            if debug_mode():
                raise
            if any(c.__name__ == "ClickException" for c in type(exc).__mro__):
                # a usage error raised in a command's body (typer's BadParameter: typer vendors its own
                # click, so click's class does not match): its message in one line, exit 2
                fail(exc.format_message())
            line = describe(exc)
            if line is not None:
                fail(line)
            first = (str(exc).splitlines() or [""])[0][:300]
            fail(f"unexpected {type(exc).__name__}{': ' + first if first else ''} (a bug in kgrec, not in your input: "
                 f"rerun with KGREC_DEBUG=1 for the traceback and report it)", code=1)

    return wrapper


class _TerminalStages:
    """On a terminal: a spinner names the current stage (and its details); each stage's end is printed."""

    def __init__(self, status):
        self.status = status

    def start(self, stage: str, what: str) -> None:
        self.status.update(f"{stage}: {what}")

    def detail(self, message: str) -> None:
        self.status.update(message)

    def end(self, result) -> None:
        from kgrec.stages import end_line

        console.print(end_line(result), highlight=False, markup=False, soft_wrap=True)


class _LineStages:
    """Without a terminal (a log file, CI, a notebook): one line when a stage starts, one when it ends,
    and between them progress lines at least every ``every`` seconds: the stage's latest progress
    message (``"pooled logreg: fold 3/5"``, ``"kge: epoch 12/30"``; :mod:`kgrec.progress`) as soon as one
    arrives that long after the last line, and, while none arrives, a line from a background timer with
    the stage's elapsed time and its latest message, so a long stage is never silent for long."""

    every = 25.0

    def __init__(self) -> None:
        self._last = time.monotonic()
        self._stage: str | None = None
        self._t0 = self._last
        self._latest: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None

    def start(self, stage: str, what: str) -> None:
        with self._lock:
            _line(f"{stage}: started, {what}")
            self._stage, self._latest = stage, None
            self._t0 = self._last = time.monotonic()
        if self._timer is None:
            self._timer = threading.Thread(target=self._beat, name="kgrec-stage-lines", daemon=True)
            self._timer.start()

    def detail(self, message: str) -> None:
        with self._lock:
            self._latest = message
            now = time.monotonic()
            if now - self._last >= self.every:  # not every per-fold/per-epoch message: they would drown the stage lines
                _line(f"  {message}")
                self._last = now

    def _beat(self) -> None:
        while not self._stop.wait(min(5.0, self.every / 5)):
            with self._lock:
                now = time.monotonic()
                if self._stage is not None and now - self._last >= self.every:
                    _line(f"  {self._stage}: {now - self._t0:.0f} s" + (f", latest: {self._latest}" if self._latest else ", running"))
                    self._last = now

    def end(self, result) -> None:
        from kgrec.stages import end_line

        self.finish(end_line(result))

    def finish(self, line: str) -> None:
        """The current stage's end line; no more timer lines for it."""
        with self._lock:
            _line(line)
            self._stage = None
            self._last = time.monotonic()

    def close(self) -> None:
        self._stop.set()


def one_step(stage: str, what: str, run: Callable[[Callable[[str], None] | None], Any]) -> Any:
    """Run one long step of a single-step command (``train --stage kge``, ``evaluate``) and return its result.

    Without a terminal (a log file, a scheduler, a pipe, ``--json`` included: these lines go to stderr) it
    prints a start line, the step's latest progress message (:mod:`kgrec.progress`) whenever 25 s pass
    without a line, and an end line with the time, as ``kgrec run`` does per stage. ``run`` gets the
    receiver of progress messages (None on a terminal, where the command keeps its own bars or spinner).
    """
    if console.is_terminal:
        return run(None)
    from kgrec.progress import reporting_to

    lines = _LineStages()
    lines.start(stage, what)
    t0 = time.perf_counter()
    ok = False
    try:
        with reporting_to(lines.detail):
            out = run(lines.detail)
        ok = True
        return out
    finally:
        lines.finish(f"{stage}: {'done' if ok else 'stopped'} in {time.perf_counter() - t0:.1f} s")
        lines.close()


def _line(message: str) -> None:
    console.print(f"{time.strftime('%H:%M:%S')} {message}", highlight=False, markup=False, soft_wrap=True)


@contextmanager
def stage_progress(what: str, quiet: bool = False) -> Iterator[object]:
    """A :class:`kgrec.stages.Reporter` for a command that runs stages: a spinner plus an end line per
    stage on a terminal, plain start/end lines with the time otherwise; nothing with ``quiet``."""
    if quiet:
        from kgrec.stages import MessageReporter

        yield MessageReporter(None)
    elif console.is_terminal:
        with console.status(what) as status:
            yield _TerminalStages(status)
    else:
        lines = _LineStages()
        try:
            yield lines
        finally:
            lines.close()
