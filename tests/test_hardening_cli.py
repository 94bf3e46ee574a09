"""The CLI answers at once (issue 16 item 8): importing it pulls in none of the heavy stack, input
errors are caught before it is imported, and Ctrl-C is one line and exit code 130. (No timed test:
the figures are in docs/reliability.md.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tests.conftest import REPO, real_data_dir

HEAVY = ("torch", "transformers", "pykeen", "torch_geometric", "peft", "sklearn", "scipy", "pandas", "pyarrow", "ladybug", "fastapi")


def _python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout


def test_cli_import_and_help_pull_in_no_heavy_module():
    out = _python(
        "import sys, json, contextlib, io\n"
        "import kgrec, kgrec.cli\n"
        "kgrec.cli.app\n"  # every command module registered
        "from typer.testing import CliRunner\n"
        "r = CliRunner().invoke(kgrec.cli.app, ['prepare', '--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    assert json.loads(out) == []


def test_source_names_match_the_loaders():
    from kgrec.cli.lazy import SOURCES
    from kgrec.cohort import LOADERS

    assert SOURCES == tuple(sorted(LOADERS))


def test_input_errors_before_the_heavy_imports(tmp_path):
    env = {**os.environ, "KGREC_DATA": str(tmp_path / "none")}
    r = subprocess.run([sys.executable, "-m", "kgrec", "prepare", "-s", "mimic3", "-w", str(tmp_path / "ws")], cwd=REPO, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 2 and "data folder (--data-dir / $KGREC_DATA) not found" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("delay", [0.15, 0.4, 1.0])
def test_ctrl_c_is_one_line_and_exit_130(tmp_path, delay):
    """Ctrl-C while Typer imports (0.15 s), while pandas/pyarrow import (0.4 s: CPython would otherwise
    re-kill itself with SIGINT at exit, seen as -2), and while the tables are read (1.0 s)."""
    if delay >= 1.0 and real_data_dir() is None:
        # without the shared tables prepare stops with its "not found" error in under a second, so the signal
        # would land during interpreter shutdown, not while tables are read
        pytest.skip("no shared data (../shared/data or KGREC_DATA): no tables to interrupt the reading of")
    env = {**os.environ, "KGREC_DATA": str(real_data_dir() or tmp_path), "OMP_NUM_THREADS": "1"}
    # as from a terminal: a test run started in the background (`cmd &`) inherits SIGINT ignored, and
    # Python then keeps ignoring it, as it should; the child gets the default disposition back
    proc = subprocess.Popen([sys.executable, "-m", "kgrec", "prepare", "-s", "mimic3", "-w", str(tmp_path / "ws")], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "kgrec: interrupted", err
    assert not (tmp_path / "ws" / "cohort").exists()
    leftovers = sorted(p.name for p in (tmp_path / "ws").glob(".*tmp*")) if (tmp_path / "ws").exists() else []
    assert leftovers == []


def test_ctrl_c_inside_code_that_swallows_exceptions_still_stops_the_command():
    """A KeyboardInterrupt raised inside ``__del__`` (or importlib's lock callback) is printed and ignored by
    CPython; kgrec's handler raises it again once that code has returned."""
    code = textwrap.dedent("""
        import os, signal, time
        from kgrec.__main__ import _install_sigint
        _install_sigint()
        class C:
            def __del__(self):
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(200000):  # the Python-level handler runs here, inside __del__
                    pass
        c = C()
        del c
        try:
            time.sleep(3)
            print("not interrupted")
        except KeyboardInterrupt:
            print("interrupted after the callback")
    """)
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                       preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert r.stdout.strip() == "interrupted after the callback", (r.stdout, r.stderr)
    assert "Exception ignored" not in r.stderr


def test_after_ctrl_c_no_commit_point_publishes(tmp_path, monkeypatch):
    """Should a library swallow the interrupt all the same, the next commit point raises it instead of
    putting the write in place; the half-built folder is removed."""
    from kgrec import fsatomic
    from tests.test_transfer import make_cohort

    monkeypatch.setattr(fsatomic, "_INTERRUPT_REQUESTED", True)
    with pytest.raises(KeyboardInterrupt):
        make_cohort("s", 5, 0, 9).save(tmp_path / "ws" / "cohort")
    assert sorted(p.name for p in (tmp_path / "ws").iterdir()) == []
    with pytest.raises(KeyboardInterrupt):
        fsatomic.replace_file(tmp_path / "a", tmp_path / "b")
