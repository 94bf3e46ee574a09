"""Options and output shared by every command: workspace, data folder, --json, error handling."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from kgrec.errors import KgrecError

# Human output goes to stderr so that stdout carries only --json.
console = Console(stderr=True)

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


def handle_errors(fn: Callable) -> Callable:
    """Turn kgrec's input errors into a one-line message and exit code 2 (no traceback)."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KgrecError as exc:
            console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return wrapper
