"""The CLI answers at once (issue 16 item 8): importing it pulls in none of the heavy stack, input
errors are caught before it is imported, and Ctrl-C is one line and exit code 130. (No timed test:
the figures are in docs/reliability.md.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
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
    env = {**os.environ, "KGREC_DATA": str(real_data_dir() or tmp_path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "kgrec", "prepare", "-s", "mimic3", "-w", str(tmp_path / "ws")], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "kgrec: interrupted", err
    assert not (tmp_path / "ws" / "cohort").exists()
    leftovers = sorted(p.name for p in (tmp_path / "ws").glob(".*tmp*")) if (tmp_path / "ws").exists() else []
    assert leftovers == []
