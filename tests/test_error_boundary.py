"""The CLI's one error boundary (issue 26): every expected failure is one line on stderr naming the file or
option, exit code 2, user text printed as typed; a bug is one line with exit code 1 and the way to its
traceback. Table-driven: each case is a family of failures met through the commands a user runs."""

from __future__ import annotations

import errno
import json
import pickle
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from kgrec.cli.common import handle_errors
from kgrec.errors import describe


def _fails_with(exc: BaseException):
    @handle_errors
    def command():
        raise exc

    return command


@pytest.mark.parametrize("exc, expect", [
    (OSError(errno.ENOSPC, "No space left on device", "/ws/cohort/visits.parquet"), ["No space left on device: /ws/cohort/visits.parquet", "free some space"]),
    (PermissionError(errno.EACCES, "Permission denied", "/data/ADMISSIONS.csv"), ["Permission denied: /data/ADMISSIONS.csv", "permissions"]),
    (FileExistsError(errno.EEXIST, "File exists", "afile"), ["File exists: afile", "in the way"]),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", "afile/ws"), ["Not a directory: afile/ws", "is a file"]),
    (OSError(errno.ELOOP, "Too many levels of symbolic links", "loop/ws"), ["symbolic links: loop/ws", "loop"]),
    (OSError(errno.EROFS, "Read-only file system", "/ro/ws"), ["Read-only file system: /ro/ws", "writable workspace"]),
    (RecursionError("maximum recursion depth exceeded"), ["nested too deeply"]),
    (MemoryError(), ["out of memory"]),
    (pickle.UnpicklingError("Weights only load failed"), ["safetensors files only", "safe_serialization=True"]),
    (json.JSONDecodeError("Expecting value", "{", 1), ["malformed JSON"]),
    (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), ["not UTF-8", "at byte 0"]),
])
def test_expected_failures_are_one_line_and_exit_2(exc, expect, capsys):
    with pytest.raises(typer.Exit) as info:
        _fails_with(exc)()
    err = capsys.readouterr().err
    assert info.value.exit_code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err  # one line
    assert all(e in err for e in expect), err
    assert "Traceback" not in err


def test_csv_parquet_and_safetensors_failures_are_described():
    import _csv

    import pyarrow as pa
    from safetensors import SafetensorError

    assert "malformed table (CSV)" in describe(_csv.Error("new-line character seen in unquoted field"))
    assert "malformed Parquet or Arrow data" in describe(pa.ArrowInvalid("Parquet magic bytes not found"))
    assert "unreadable safetensors file" in describe(SafetensorError("Error while deserializing header"))
    assert describe(KeyError("x")) is None and describe(TypeError("x")) is None  # bugs are not "expected"


def test_a_bug_is_one_line_exit_1_and_the_debug_switch_shows_the_traceback(capsys, monkeypatch):
    monkeypatch.delenv("KGREC_DEBUG", raising=False)
    with pytest.raises(typer.Exit) as info:
        _fails_with(KeyError("visit_order"))()
    err = capsys.readouterr().err
    assert info.value.exit_code == 1 and err.count("\n") == 1
    assert "unexpected KeyError: 'visit_order'" in err and "KGREC_DEBUG=1" in err
    monkeypatch.setenv("KGREC_DEBUG", "1")
    with pytest.raises(KeyError):
        _fails_with(KeyError("visit_order"))()


def test_user_text_is_printed_as_typed(tmp_path, monkeypatch):
    """Rich markup and emoji codes in what the user typed are not interpreted (':x:' stays ':x:')."""
    from kgrec.cli import app

    monkeypatch.setenv("KGREC_DATA", str(tmp_path))
    r = CliRunner().invoke(app, ["recommend", "-w", str(tmp_path / "no:thumbs_up:dir[bold]x[/]"), "--visit", ":x:-:warning:"])
    assert r.exit_code == 2, r.output
    assert "no:thumbs_up:dir[bold]x[/]" in r.output and "👍" not in r.output


@pytest.mark.parametrize("make_ws, expect", [
    (lambda p: (p / "afile").write_text("x") and p / "afile", "File exists"),
    (lambda p: (p / "afile").write_text("x") and p / "afile" / "ws", "Not a directory"),
])
def test_workspace_that_is_a_file_is_one_line(tmp_path, make_ws, expect):
    """`-w` pointing at a regular file, or at a path under one: one line naming it, exit 2."""
    from tests.conftest import real_data_dir

    data = real_data_dir()
    if data is None:
        pytest.skip("open data folder not present")
    from kgrec.cli import app

    ws = make_ws(tmp_path)
    r = CliRunner().invoke(app, ["prepare", "-s", "mimic3", "-w", str(ws), "--data-dir", str(data)])
    assert r.exit_code == 2, r.output
    assert expect in r.output and str(ws) in r.output.replace("\n", "") and "Traceback" not in r.output


def test_cr_only_line_endings_name_the_file_and_line(tmp_path):
    """A table saved with CR-only line endings (`tr '\\n' '\\r'`): an InputError naming the file, line 1."""
    from kgrec.errors import InputError
    from kgrec.tables import read_table

    f = tmp_path / "ADMISSIONS.csv"
    f.write_bytes(b"SUBJECT_ID,HADM_ID\r10006,142345\r10011,105331\r")
    with pytest.raises(InputError, match=r"ADMISSIONS.csv, line 1: a carriage return \(CR\) inside the header line"):
        read_table(f, ["subject_id", "hadm_id"])


def test_one_permission_policy_the_umask(tmp_path):
    """What kgrec swaps into place follows the user's umask, also files a library made private (safetensors
    writes 0600, tempfile.mkdtemp makes 0700)."""
    import os
    import tempfile

    import numpy as np
    from safetensors.numpy import save_file

    from kgrec.fsatomic import atomic_dir

    old = os.umask(0o027)
    try:
        target = tmp_path / "model"
        with atomic_dir(target) as tmp:
            save_file({"w": np.zeros(2, np.float32)}, str(tmp / "w.safetensors"))
            inner = Path(tempfile.mkdtemp(dir=tmp))
            (inner / "x.json").write_text("{}")
        modes = {p.relative_to(target).as_posix(): p.stat().st_mode & 0o777 for p in [target, *target.rglob("*")]}
    finally:
        os.umask(old)
    assert modes.pop(".") == 0o750 and modes.pop("w.safetensors") == 0o640
    assert all(m == (0o750 if (target / k).is_dir() else 0o640) for k, m in modes.items()), modes


def test_long_stage_prints_progress_without_a_terminal(monkeypatch, capsys):
    """Before: without a terminal, `kgrec run`'s pool step printed nothing for 5 minutes."""
    import kgrec.cli.common as common

    t = [1000.0]
    monkeypatch.setattr(common.time, "monotonic", lambda: t[0])
    rep = common._LineStages()
    try:
        rep.start("pool", "5 folds")
        for i in range(1, 11):
            t[0] += 10.0  # a message every 10 s
            rep.detail(f"pooled logreg: fold {i}/10")
    finally:
        rep.close()  # its timer thread stops (stage_progress closes it the same way)
    lines = [x for x in capsys.readouterr().err.splitlines() if "logreg: fold" in x]
    assert len(lines) == 3 and lines[0].endswith("pooled logreg: fold 3/10")  # one every 30 s of 10-s messages (>= 25 s apart)


QUERY_CASES = {
    # name: (make the query argument in tmp_path, extra args, what the one line says)
    "a folder": (lambda p: (p / "dir.cypher").mkdir() or p / "dir.cypher", [], "Is a directory"),
    "not UTF-8": (lambda p: (p / "bin.cypher").write_bytes(b"\xff\xfe\x00RETURN 1") and p / "bin.cypher", [], "not UTF-8 text"),
    "a missing file": (lambda p: p / "missing.cypher", [], "query file not found"),
    "neither a name nor a file": (lambda p: "MATCH (n) RETURN n", [], "neither a query name nor a .cypher file"),
    "a parameter without a value": (lambda p: (p / "q.cypher").write_text("RETURN $x AS x") and p / "q.cypher", ["-p", "novalue"],
                                    "Invalid value for --param: 'novalue': use name=value"),
    "a Cypher syntax error": (lambda p: (p / "bad.cypher").write_text("MATCH (n RETURN n") and p / "bad.cypher", [], "embedded store: Parser exception"),
}
MULTI_LINE = {"a Cypher syntax error": 3}  # the store's message, then the statement with a caret under the fault


@pytest.mark.parametrize("case", list(QUERY_CASES))
def test_query_hostile_inputs_are_one_line_exit_2(tmp_path, case, capsys):
    """`kgrec query` given a folder, a binary file, a missing file, free text, a parameter without a value
    or broken Cypher: one line on stderr, exit 2 (a usage error raised in a command's body included)."""
    from kgrec.cli import app
    from kgrec.graph.stores import get_store
    from tests.graph_tiny import tiny_tables

    ws = tmp_path / "ws"
    store = get_store("embedded", workspace=ws)
    store.load(tiny_tables())
    store.close()
    make, extra, expect = QUERY_CASES[case]
    r = CliRunner().invoke(app, ["query", "-w", str(ws), str(make(tmp_path)), *extra])
    assert r.exit_code == 2, r.output
    err = r.stderr if hasattr(r, "stderr") else r.output
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == MULTI_LINE.get(case, 1) and expect in lines[0] and "unexpected" not in lines[0], err
    assert "Traceback" not in err and r.stdout.strip() == ""
