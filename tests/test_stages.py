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
