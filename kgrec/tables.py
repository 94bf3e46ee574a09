"""Reading source tables: any header case, CRLF or LF, ``.csv`` or ``.csv.gz``, strict UTF-8.

Every loader goes through :func:`read_table`, so every source gets the same clear errors: a missing
file or column, an empty file or undecodable bytes name the file (and line or column).
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from kgrec.errors import InputError

SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz")


def find_table(folder: Path, name: str) -> Path:
    """Find ``name`` in ``folder`` as .csv/.csv.gz (file name in any case). ``name`` may hold a subfolder."""
    folder = Path(folder)
    parent = folder / Path(name).parent
    stem = Path(name).name.lower()
    if parent.is_dir():
        by_lower = {p.name.lower(): p for p in parent.iterdir() if p.is_file()}
        for suffix in SUFFIXES:
            hit = by_lower.get(stem + suffix)
            if hit is not None:
                return hit
    raise InputError(
        f"table {name!r} not found (looked for {', '.join(stem + s for s in SUFFIXES[:2])}, any case)",
        path=parent,
    )


def _open_text(path: Path) -> bytes:
    raw = path.read_bytes()
    if path.name.lower().endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise InputError(f"not a readable gzip file ({exc})", path=path) from exc
    return raw


def _check_utf8(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InputError(
            f"bytes that are not UTF-8 at byte {exc.start} ({raw[exc.start:exc.start + 4]!r}); "
            "re-save the file as UTF-8",
            path=path,
            line=line,
        ) from exc


def read_table(
    path: Path,
    required: Iterable[str],
    optional: Iterable[str] = (),
    sep: str | None = None,
) -> pd.DataFrame:
    """Read a delimited text table as strings, with lower-cased headers.

    Args:
        path: the file (``.csv``, ``.tsv``, optionally gzipped).
        required: lower-case column names that must be present; a missing one is an :class:`InputError`.
        optional: lower-case column names kept if present.
        sep: delimiter; default ``,`` for .csv and tab for .tsv.

    Returns:
        A DataFrame of ``str`` columns (missing cells are ``""``), only the required and optional columns,
        with an extra integer column ``_line`` holding each row's line number in the file (header = 1).
    """
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=path)
    text = _check_utf8(_open_text(path), path)
    if not text.strip():
        raise InputError("file is empty", path=path)
    if sep is None:
        sep = "\t" if ".tsv" in path.name.lower() else ","
    required = [c.lower() for c in required]
    wanted = set(required) | {c.lower() for c in optional}
    header = pd.read_csv(io.StringIO(text), sep=sep, nrows=0, dtype=str)
    columns = [str(c).strip().lower() for c in header.columns]
    for col in required:
        if col not in columns:
            raise InputError(f"missing column (found: {', '.join(columns)})", path=path, column=col)
    keep = [i for i, c in enumerate(columns) if c in wanted]
    try:
        df = pd.read_csv(
            io.StringIO(text),
            sep=sep,
            usecols=keep,
            dtype=str,
            keep_default_na=False,
            na_values=[],
        )
    except (pd.errors.ParserError, ValueError) as exc:
        raise InputError(f"cannot parse as {'TSV' if sep == chr(9) else 'CSV'}: {exc}", path=path) from exc
    df.columns = [columns[i] for i in keep]
    df = df.apply(lambda s: s.str.strip())
    # Line numbers for error messages; exact for files without embedded newlines in quoted cells.
    df["_line"] = range(2, len(df) + 2)
    return df


def read_source(folder: Path, name: str, required: Iterable[str], optional: Iterable[str] = ()) -> pd.DataFrame:
    """:func:`find_table` then :func:`read_table`; the frame's ``attrs['path']`` records the file."""
    path = find_table(folder, name)
    df = read_table(path, required, optional)
    df.attrs["path"] = str(path)
    return df


_FORMATS = ("%m/%d/%y %H:%M", "%m/%d/%y %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%m/%d/%y", "%m/%d/%Y")


def parse_times(values: pd.Series, path: object, column: str, lines: pd.Series | None = None) -> pd.Series:
    """Parse timestamps in ISO form (``2146-07-21 00:00:00``, ``2019-07-08T23:38:03Z``) or US form
    (``10/23/64 21:09``, as in the re-saved MIMIC-III demo). Empty cells become NaT.

    Two-digit years are read as 21YY: MIMIC shifts dates into 2100-2210, so the ``%y`` pivot of 1969
    would put ``64`` in 1964 and scramble visit order. Anything else unparseable is an InputError that
    names the file, column and line.
    """
    s = values.fillna("").astype(str).str.strip()
    out = pd.to_datetime(s.where(s != ""), errors="coerce", format="ISO8601", utc=True).dt.tz_localize(None)
    todo = out.isna() & (s != "")
    for fmt in _FORMATS:
        if not todo.any():
            break
        parsed = pd.to_datetime(s[todo], errors="coerce", format=fmt)
        if "%y" in fmt:
            # shift 19YY/20YY from the pivot into 21YY (MIMIC's shifted range)
            years = parsed.dt.year
            parsed = parsed + pd.to_timedelta(0, unit="D")
            shift = ((2100 + years % 100) - years).where(parsed.notna(), 0).astype(int)
            parsed = pd.Series(
                [p.replace(year=p.year + int(k)) if pd.notna(p) else p for p, k in zip(parsed, shift)],
                index=parsed.index,
                dtype="datetime64[ns]",
            )
        out.loc[todo] = parsed
        todo = out.isna() & (s != "")
    if todo.any():
        i = todo[todo].index[0]
        line = int(lines.loc[i]) if lines is not None else None
        raise InputError(f"unparseable date {s.loc[i]!r}", path=path, column=column, line=line)
    return out
