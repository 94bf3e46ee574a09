"""`--stage all`: order, skipping current stages, redoing stale and interrupted ones."""

from __future__ import annotations

import os

import pytest

from kgrec.stages import STAGES, run_all

OUTPUT = {"kge": "embed/kge/vectors.safetensors", "gnn": "embed/gnn/vectors.safetensors", "teacher": "teacher/model.json", "distill": "student/student.json"}


@pytest.fixture
def ws(tmp_path):
    (tmp_path / "graph" / "tables").mkdir(parents=True)
    (tmp_path / "graph" / "tables" / "x.parquet").write_text("t")
    (tmp_path / "cohort").mkdir()
    (tmp_path / "cohort" / "visits.parquet").write_text("v")
    return tmp_path


def fake_runners(calls, fail=None):
    def make(stage):
        def run(ws, progress=False, **kw):
            if stage == fail:
                raise RuntimeError("interrupted")
            calls.append(stage)
            out = ws / OUTPUT[stage]
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(f"{stage} {len(calls)}")
            return {"stage": stage, **kw}
        return run
    return {s: make(s) for s in STAGES}


def test_runs_in_order_then_skips_current(ws):
    calls = []
    r = run_all(ws, {"kge": {"epochs": 5}}, runners=fake_runners(calls))
    assert calls == ["kge", "gnn", "teacher", "distill"] and r.ran == calls and r.results["kge"]["epochs"] == 5
    r = run_all(ws, {"kge": {"epochs": 5}}, runners=fake_runners(calls))
    assert r.skipped == list(STAGES) and len(calls) == 4


def test_changed_settings_or_inputs_make_later_stages_stale(ws):
    calls = []
    run_all(ws, runners=fake_runners(calls))
    calls.clear()
    run_all(ws, {"gnn": {"epochs": 7}}, runners=fake_runners(calls))
    assert calls == ["gnn", "teacher", "distill"]  # kge untouched, everything after gnn stale
    calls.clear()
    p = ws / "graph" / "tables" / "x.parquet"
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10**9))
    run_all(ws, {"gnn": {"epochs": 7}}, runners=fake_runners(calls))
    assert calls == list(STAGES)


def test_interrupted_stage_is_redone(ws):
    calls = []
    with pytest.raises(RuntimeError):
        run_all(ws, runners=fake_runners(calls, fail="teacher"))
    assert calls == ["kge", "gnn"]
    calls.clear()
    r = run_all(ws, runners=fake_runners(calls))
    assert r.skipped == ["kge", "gnn"] and calls == ["teacher", "distill"]


def test_each_stage_says_why_it_ran_or_was_skipped_and_saves_itself(ws):
    import json

    calls = []
    r = run_all(ws, {"kge": {"epochs": 5}}, runners=fake_runners(calls), record=ws / "run")
    assert [(s.stage, s.ran, s.reason) for s in r.stages] == [(st, True, "no finished earlier run") for st in STAGES]
    saved = json.loads((ws / "run" / "teacher.json").read_text())
    assert saved["status"] == "ran" and saved["output"] == {"stage": "teacher"} and saved["seconds"] >= 0
    r = run_all(ws, {"kge": {"epochs": 6}}, runners=fake_runners(calls), record=ws / "run")
    why = {s.stage: (s.ran, s.reason) for s in r.stages}
    assert why["kge"] == (True, "settings changed: epochs")
    assert why["gnn"] == (True, "input changed: embed/kge/vectors.safetensors")  # the new kge vectors
    r = run_all(ws, {"kge": {"epochs": 6}}, runners=fake_runners(calls), record=ws / "run")
    assert all(not s.ran and s.reason.startswith("outputs current") for s in r.stages)
    assert json.loads((ws / "run" / "distill.json").read_text())["status"] == "skipped"
    assert r.to_json()["stages"][0] == {"stage": "kge", "status": "skipped", "reason": r.stages[0].reason, "seconds": 0.0, "figure": "", "output": {}}
    r = run_all(ws, {"kge": {"epochs": 6}}, runners=fake_runners(calls), force=True)
    assert all(s.ran and s.reason == "forced (--force)" for s in r.stages)


def test_key_figures():
    from kgrec.stages import key_figure

    assert key_figure("kge", {"metrics": {"mrr": 0.21345}}) == "held-out MRR 0.213"
    assert key_figure("distill", {"test": {"metrics": {"prauc": 0.6}}}) == "test PRAUC 0.600"
    assert key_figure("teacher", {}) == ""


SCRIPT = r'''
import sys, warnings
from pathlib import Path
from kgrec.cli.common import stage_progress
from kgrec.logs import quiet_third_party
from kgrec.stages import run_all
from tests.test_stages import fake_runners

quiet_third_party()
# the same warning from torch's data loader (silenced) and from anywhere else (kept)
warnings.warn_explicit("'pin_memory' argument is set as true but no accelerator is found", UserWarning, "dataloader.py", 1, module="torch.utils.data.dataloader")
warnings.warn_explicit("'pin_memory' argument is set as true but no accelerator is found", UserWarning, "mine.py", 1, module="kgrec.mine")
import logging
logging.basicConfig()
logging.getLogger("torch_max_mem.api").warning("Encountered tensors on device_types={'cpu'}")
logging.getLogger("pykeen.evaluation.evaluator").info("Evaluation took 1s")
with stage_progress("training") as rep:
    rep.detail("epoch 3 of 5")
    run_all(Path(sys.argv[1]), runners=fake_runners([]), progress=rep)
'''


def test_without_a_terminal_each_stage_prints_a_start_and_an_end_line(ws):
    """stderr to a pipe (a log file, CI): two lines per stage, with the time; no third-party noise."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    p = subprocess.run([sys.executable, "-c", SCRIPT, str(ws)], cwd=root, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    lines = p.stderr.splitlines()
    warned = [ln for ln in lines if "pin_memory" in ln]
    assert len(warned) == 1 and "mine.py" in warned[0]  # kept where it does not come from torch's loader
    rest = [ln for ln in lines if "pin_memory" not in ln and ln.strip() != "warnings.warn_explicit(" and not ln.startswith("  ")]
    assert not [ln for ln in rest if "torch_max_mem" in ln or "Evaluation took" in ln], rest
    stage_lines = [ln for ln in rest if re.match(r"^\d\d:\d\d:\d\d ", ln)]
    assert stage_lines == rest, rest  # nothing else: no per-epoch detail, no spinner
    expected = []
    for st in STAGES:
        expected += [rf"{st}: started, training .* \(no finished earlier run\)", rf"{st}: done in \d+\.\d s"]
    assert len(stage_lines) == len(expected)
    for ln, pat in zip(stage_lines, expected):
        assert re.fullmatch(r"\d\d:\d\d:\d\d " + pat, ln), (ln, pat)


HEARTBEAT = r'''
import sys, time
from pathlib import Path
from kgrec.cli import common
from kgrec.progress import report
from kgrec.stages import run_all
from tests.test_stages import fake_runners

common._LineStages.every = 0.6
runners = fake_runners([])
plain = dict(runners)

def kge(ws, progress=False, **kw):  # a long stage that reports its epochs (kgrec.progress)
    for e in range(4):
        time.sleep(0.45)
        report(f"kge: epoch {e + 1}/4")
    return plain["kge"](ws, progress, **kw)

def gnn(ws, progress=False, **kw):  # a long stage that reports nothing
    time.sleep(1.6)
    return plain["gnn"](ws, progress, **kw)

with common.stage_progress("training") as rep:
    run_all(Path(sys.argv[1]), runners={**runners, "kge": kge, "gnn": gnn}, progress=rep)
'''


def test_without_a_terminal_a_long_stage_is_never_silent_for_long(ws):
    """Issue 28: without a terminal a long stage prints a progress line at least every `every` seconds
    (25 s in use; 0.6 s here): its latest epoch message as it comes (done/total), and from a timer
    while none comes, with the stage's elapsed time."""
    import re
    import subprocess
    import sys
    from datetime import datetime
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    p = subprocess.run([sys.executable, "-c", HEARTBEAT, str(ws)], cwd=root, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if re.match(r"^\d\d:\d\d:\d\d ", ln)]
    kge = lines[lines.index(next(ln for ln in lines if "kge: started" in ln)):]
    kge = kge[:next(i for i, ln in enumerate(kge) if "kge: done" in ln)]
    # its latest message (done/total): as it comes, or in the timer's line when one came just before
    assert any(re.search(r"   (kge: \d+ s, latest: )?kge: epoch [1234]/4$", ln) for ln in kge[1:]), lines
    gnn = lines[lines.index(next(ln for ln in lines if "gnn: started" in ln)):]
    gnn = gnn[:next(i for i, ln in enumerate(gnn) if "gnn: done" in ln)]
    assert any(re.search(r"   gnn: \d+ s, running$", ln) for ln in gnn), lines  # the timer's line while the stage says nothing
    stamps = [datetime.strptime(ln[:8], "%H:%M:%S") for ln in lines]
    assert max((b - a).total_seconds() for a, b in zip(stamps, stamps[1:])) <= 2, lines


ONE_STEP = r'''
import time
from kgrec.cli import common
from kgrec.progress import report

common._LineStages.every = 0.6

def teacher(sink):  # a single-stage command's long step (`kgrec train --stage teacher`): reports, then goes quiet
    for i in range(3):
        time.sleep(0.45)
        report(f"teacher: encoded {i + 1}/3")
    time.sleep(1.6)
    return 42

assert common.one_step("teacher", "the language-model teacher", teacher) == 42
try:
    common.one_step("evaluate", "logreg", lambda sink: 1 / 0)
except ZeroDivisionError:
    pass
'''


def test_a_single_stage_command_without_a_terminal_prints_start_progress_and_end_lines():
    """Issue 28: `kgrec train --stage X` and `kgrec evaluate` run as their own processes (scripts/bench_scale.py,
    a scheduler) print, without a terminal, a start line, progress lines (done/total, or the elapsed time) with no
    gap over `every`, and an end line; a failed step says it stopped."""
    import re
    import subprocess
    import sys
    from datetime import datetime
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    p = subprocess.run([sys.executable, "-c", ONE_STEP], cwd=root, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout == ""  # lines go to stderr: stdout stays the command's result (--json)
    lines = [ln for ln in p.stderr.splitlines() if re.match(r"^\d\d:\d\d:\d\d ", ln)]
    assert lines[0].endswith("teacher: started, the language-model teacher"), lines
    assert any(re.search(r"teacher: encoded [123]/3$", ln) for ln in lines), lines
    assert any(re.search(r"   teacher: \d+ s, latest: teacher: encoded 3/3$", ln) for ln in lines), lines  # the timer, while quiet
    assert re.search(r"teacher: done in \d+\.\d s$", lines[lines.index(next(ln for ln in lines if "evaluate: started" in ln)) - 1]), lines
    assert re.search(r"evaluate: stopped in \d+\.\d s$", lines[-1]), lines
    stamps = [datetime.strptime(ln[:8], "%H:%M:%S") for ln in lines]
    assert max((b - a).total_seconds() for a, b in zip(stamps, stamps[1:])) <= 2, lines


HOLDER = r'''
import sys, time
from kgrec.writelock import one_writer
with one_writer(sys.argv[1], "kgrec distill stage"):
    print("held", flush=True)
    time.sleep(120)
'''


def test_a_second_run_training_into_the_same_workspace_stops_at_once_with_one_clear_error(tmp_path, monkeypatch):
    """Issue 28, bad input: two launches writing one workspace at once. The second stops before training,
    naming the first; the first's files are untouched; a killed holder leaves no stale lock; under
    `accelerate launch` only rank 0 takes the lock (the ranks of one launch do not lock each other out)."""
    import signal
    import subprocess
    import sys
    import time

    from kgrec import stages
    from kgrec.errors import WorkspaceError

    ws = tmp_path / "ws"
    (ws / "student").mkdir(parents=True)
    (ws / "student" / "student.json").write_text('{"kind": "student-wide"}')
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(ws)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        with pytest.raises(WorkspaceError, match=rf"process {holder.pid} \(kgrec distill stage, since .*\) is training in this workspace"):
            stages.train_student(ws, progress=False)
        assert time.monotonic() - t0 < 2  # at once, no waiting
        with pytest.raises(WorkspaceError, match="another workspace"):
            stages.train_teacher(ws, progress=False)
        assert (ws / "student" / "student.json").read_text() == '{"kind": "student-wide"}'
        ran = stages._one_writer("distill")(lambda w, **kw: "trained")
        monkeypatch.setenv("RANK", "1")  # a non-zero rank of an accelerate launch writes nothing and takes no lock
        assert ran(ws) == "trained"
        monkeypatch.setenv("RANK", "0")
        with pytest.raises(WorkspaceError):
            ran(ws)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    assert ran(ws) == "trained"  # the kernel dropped the killed holder's lock
    with stages.sole_writer(ws, "kgrec run"):  # kgrec run holds it while its stages take it again
        assert ran(ws) == "trained"
    assert run_all(ws, runners={s: ran for s in STAGES}).ran == list(STAGES)
