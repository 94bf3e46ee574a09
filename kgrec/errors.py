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


def describe(exc: BaseException) -> str | None:
    """One line for an expected failure that is not a :class:`KgrecError` (I/O, permissions, a full disk,
    a malformed file of a format kgrec reads, a resource limit), naming the file where the exception
    knows it and what to do; None for anything else (a bug: the caller reports it as unexpected).

    The CLI's error boundary (:func:`kgrec.cli.common.handle_errors`) and the service's start-up use it,
    so every command says the same thing for the same failure.
    """
    import errno

    name = type(exc).__name__
    if isinstance(exc, OSError):
        where = next((str(f) for f in (exc.filename, getattr(exc, "filename2", None)) if f), None)
        what = exc.strerror or str(exc) or name
        hints = {
            errno.ENOSPC: "free some space or choose another workspace (-w); nothing was put in place of the old files",
            errno.EDQUOT: "the disk quota is exhausted; free some space or choose another workspace (-w)",
            errno.EACCES: "check the permissions of the file and the folders above it",
            errno.EPERM: "check the permissions of the file and the folders above it",
            errno.EROFS: "the file system is read-only; choose a writable workspace (-w)",
            errno.ENOENT: "check the path",
            errno.ENOTDIR: "a part of the path is a file, not a folder",
            errno.EISDIR: "a folder was given where a file is expected",
            errno.EEXIST: "a file is in the way of a folder kgrec needs to create",
            errno.ELOOP: "the path has a symbolic-link loop",
            errno.ENAMETOOLONG: "shorten the path",
            errno.EMFILE: "too many open files; raise the limit (ulimit -n)",
        }
        hint = hints.get(exc.errno)
        return f"{what}{': ' + where if where else ''}{' (' + hint + ')' if hint else ''}"
    module = type(exc).__module__ or ""
    if name == "Error" and module == "_csv":
        return f"malformed table (CSV): {exc}; check the file's line endings and quoting"
    if isinstance(exc, UnicodeDecodeError):
        return f"a file is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8"
    if name == "JSONDecodeError":
        return f"malformed JSON: {exc}"
    if module.startswith("pyarrow") and name.startswith("Arrow"):
        return f"malformed Parquet or Arrow data: {str(exc).splitlines()[0] if str(exc) else name}"
    if name == "SafetensorError":
        return f"unreadable safetensors file: {exc}; rebuild it with the command that wrote it"
    if name == "UnpicklingError" or (isinstance(exc, RuntimeError) and "weights_only" in str(exc)):
        return ("kgrec loads model weights from safetensors files only and never unpickles a file it did not write; "
                "convert the model with `AutoModel.from_pretrained(path).save_pretrained(path, safe_serialization=True)`")
    if isinstance(exc, RecursionError):
        return "an input is nested too deeply to read (recursion limit); check the file or parameter for runaway brackets"
    if isinstance(exc, MemoryError):
        return "out of memory; use a smaller cohort, fewer workers (KGREC_JOBS) or a machine with more memory"
    if name == "ParserError" and module.startswith("pandas"):
        return f"malformed table: {exc}"
    return None
