"""Errors kgrec raises for bad input. The CLI turns them into a message and a non-zero exit."""

from __future__ import annotations


class KgrecError(Exception):
    """Base class: a problem the user can fix (bad file, bad option), not a bug."""


class InputError(KgrecError):
    """A source file is missing, empty, malformed, or lacks a column.

    The message always names the file, and the column and line where they are known.
    """

    def __init__(self, message: str, *, path: object = None, column: str | None = None, line: int | None = None):
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}")
        self.path, self.column, self.line = path, column, line
        super().__init__(f"{': '.join([', '.join(where), message]) if where else message}")


class WorkspaceError(KgrecError):
    """The workspace lacks an artefact a step needs (e.g. evaluate before prepare)."""


class OptionError(KgrecError, ValueError):
    """An option names something that does not exist (a model, a setting); also a ValueError for API callers."""
