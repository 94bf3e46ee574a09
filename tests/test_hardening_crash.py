"""Crash safety (issue 16 items 4, 5): ``kgrec load-graph`` and ``kgrec prepare`` killed with SIGKILL at
several points of a real load of the MIMIC-III demo leave the previous graph, tables and cohort intact,
consistent and queryable; the next load leaves no stale files. The commit window itself (between the
swaps of the tables and the graph file) is hit exactly by killing a process from inside the swap."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, real_data_dir, requires_real_data

pytestmark = requires_real_data
STALE = (".embedded.lbug.build-", ".tables.tmp-", ".tables.old-", ".cohort.tmp-", ".cohort.old-", ".commit.json")


def _kgrec(*args: str) -> subprocess.Popen:
    env = {**os.environ, "KGREC_DATA": str(real_data_dir()), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "kgrec", *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _kill_after(proc: subprocess.Popen, seconds: float) -> None:
    time.sleep(seconds)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def _graph_state(ws: Path) -> tuple[dict, dict]:
    """Node/edge counts in the graph file and in the saved tables (must agree: one build)."""
    from kgrec.graph.stores.embedded import EmbeddedStore
    from kgrec.graph.tables import GraphTables

    with EmbeddedStore(ws, read_only=True) as st:
        stats = st.stats()
    db = {k: v for k, v in {**stats["nodes"], **stats["edges"]}.items() if v}
    t = GraphTables.load(ws / "graph" / "tables").counts()
    tables = {k: v for k, v in {**t["nodes"], **t["edges"]}.items() if v}
    return db, tables


def _stale(ws: Path) -> list[str]:
    return sorted(p.name for d in (ws, ws / "graph") if d.is_dir() for p in d.iterdir() if p.name.startswith(STALE))


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    from kgrec import api
    from kgrec.graph.load import load_graph

    ws = tmp_path_factory.mktemp("crash")
    api.prepare("mimic3", ws, real_data_dir())
    load_graph(ws, real_data_dir())
    return ws


def _kill_when_building(ws: Path) -> None:
    """SIGKILL a load-graph once its new database file exists (its build phase)."""
    proc = _kgrec("load-graph", "-w", str(ws))
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if any(p.name.startswith(".embedded.lbug.build-") for p in (ws / "graph").iterdir()):
            time.sleep(0.3)
            break
        time.sleep(0.05)
    _kill_after(proc, 0)
    assert any(p.name.startswith(".embedded.lbug.build-") for p in (ws / "graph").iterdir())  # killed mid-build


def test_sigkill_during_load_graph_keeps_the_previous_graph(ws):
    before_db, before_tables = _graph_state(ws)
    assert before_db == before_tables and before_db["Visit"] == 129
    for delay in (0.5, 1.5, 3.0):
        _kill_after(_kgrec("load-graph", "-w", str(ws)), delay)
        assert _graph_state(ws) == (before_db, before_tables), delay
    _kill_when_building(ws)
    assert _graph_state(ws) == (before_db, before_tables)
    # the next load sweeps what the killed ones left (build files of dead pids) and leaves nothing
    from kgrec.graph.load import load_graph

    load_graph(ws, real_data_dir())
    assert _stale(ws) == []
    assert _graph_state(ws) == (before_db, before_tables)


def test_sigkill_during_prepare_keeps_the_previous_cohort(ws):
    from kgrec.cohort.base import Cohort

    cohort = ws / "cohort"
    before = {p.name: p.read_bytes() for p in cohort.iterdir()}
    for delay in (0.5, 1.5, 3.0):
        _kill_after(_kgrec("prepare", "-s", "mimic3", "-w", str(ws)), delay)
        assert {p.name: p.read_bytes() for p in cohort.iterdir()} == before, delay
        assert Cohort.load(cohort).stats()["n_visits"] == 129
    # a later prepare removes the leftovers at its start, even one that then fails on its input
    (ws / ".cohort.tmp-999999999-0123abcd").mkdir()
    assert _kgrec("prepare", "-s", "mimic3", "-w", str(ws), "--source-dir", str(ws / "nope")).wait(timeout=120) == 2
    assert _stale(ws) == []
    assert _kgrec("prepare", "-s", "mimic3", "-w", str(ws)).wait(timeout=120) == 0
    assert _stale(ws) == []


KILLER = textwrap.dedent('''
    import os, signal, sys
    from pathlib import Path
    from kgrec import fsatomic
    point, folder = sys.argv[1], Path(sys.argv[2])
    real_exchange, real_replace = fsatomic.exchange, os.replace
    def exchange(a, b):
        done = real_exchange(a, b)
        if point == "after-tables":
            os.kill(os.getpid(), signal.SIGKILL)
        return done
    def replace(a, b):
        real_replace(a, b)
        if point == "after-journal" and str(b).endswith(".commit.json"):
            os.kill(os.getpid(), signal.SIGKILL)
    fsatomic.exchange, fsatomic.os.replace = exchange, replace
    fsatomic.commit([(folder / "new-tables", folder / "tables"), (folder / "new.db", folder / "graph.db")], folder, "B2")
''')


@pytest.mark.parametrize("point", ["after-journal", "after-tables"])
def test_kill_inside_the_commit_is_finished_by_the_next_reader(tmp_path, point):
    from kgrec import fsatomic

    for name, build in (("tables", "B1"), ("new-tables", "B2")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "BUILD").write_text(build)
    (tmp_path / "graph.db").write_text("B1")
    (tmp_path / "new.db").write_text("B2")
    proc = subprocess.run([sys.executable, "-c", KILLER, point, str(tmp_path)], cwd=REPO)
    assert proc.returncode == -signal.SIGKILL
    assert (tmp_path / fsatomic.JOURNAL).exists()
    assert fsatomic.recover(tmp_path)
    assert (tmp_path / "tables" / "BUILD").read_text() == "B2" and (tmp_path / "graph.db").read_text() == "B2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graph.db", "tables"]


def test_replace_dir_never_leaves_neither(tmp_path):
    from kgrec import fsatomic

    target = tmp_path / "cohort"
    target.mkdir()
    (target / "v").write_text("old")
    new = fsatomic.temp_dir(target)
    (new / "v").write_text("new")
    fsatomic.replace_dir(new, target)
    assert (target / "v").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["cohort"]
    # a crash between the two renames of the fallback path: the sweep puts the old folder back
    old = tmp_path / ".cohort.old-999999999-0123abcd"
    os.replace(target, old)
    assert fsatomic.sweep(tmp_path) == [] and (target / "v").read_text() == "new"
    # leftovers of a dead writer go, those of a live one stay
    dead = tmp_path / ".cohort.tmp-999999999-0123abcd"
    live = tmp_path / f".cohort.tmp-{os.getpid()}-0123abcd"
    dead.mkdir(), live.mkdir()
    assert fsatomic.sweep(tmp_path) == [dead] and live.exists()
