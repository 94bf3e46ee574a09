"""The README's main command, ``kgrec run``, end to end on the real MIMIC-III demo (``../shared/data``),
at reduced settings (2 folds, 1 KGE epoch of size 8, 5 R-GCN epochs) so that it takes a few minutes on 2 cores.

Nothing is faked: the command runs in a subprocess with its stderr going to a pipe, as in CI or a log
file. The checks: every step ran, and said so in one start and one end line; the saved teacher and
student reload to the predictions they were measured with when trained; the report's numbers are the
ones ``kgrec evaluate`` gives for the same workspace.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import real_data_dir, requires_real_data

pytestmark = requires_real_data
REPO = Path(__file__).resolve().parents[1]
STEPS = ["prepare", "load-graph", "kge", "gnn", "teacher", "distill", "evaluate", "explain"]
MODELS = ["frequency", "logreg", "logreg-graph", "teacher", "student"]


def kgrec(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "KGREC_DATA": str(real_data_dir()), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("KGREC_WORKSPACE", None)
    return subprocess.run([sys.executable, "-m", "kgrec", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def main_job(tmp_path_factory):
    ws = tmp_path_factory.mktemp("main-job") / "ws"
    p = kgrec("run", "-w", str(ws), "--folds", "2", "--kge-epochs", "1", "--kge-dim", "8", "--gnn-epochs", "5", "--json")
    assert p.returncode == 0, p.stderr[-3000:]
    return ws, json.loads(p.stdout), p.stderr


def test_every_step_ran_and_said_so(main_job):
    ws, out, err = main_job
    assert [(s["stage"], s["status"]) for s in out["steps"]] == [(s, "ran") for s in STEPS]
    assert out["stats"]["n_patients"] == 100 and out["graph"]["n_nodes"] > 10_000
    for st in ("kge", "gnn"):
        assert out["stages"]["results"][st]["metrics"]["mrr"] > 0
    saved = json.loads((ws / "reports" / "run.json").read_text())
    assert saved["steps"] == out["steps"] and saved["evaluation"] == out["evaluation"]
    assert all((ws / "reports" / "run" / f"{s}.json").exists() for s in STEPS)
    # stderr is not a terminal: one line when each step starts and one when it ends, between them indented
    # progress lines (a long step's latest epoch or fold, at least every 25 s), and nothing else (no
    # library warnings, no progress bars)
    lines = err.splitlines()
    assert lines and all(re.match(r"\d\d:\d\d:\d\d (  )?[a-z-]+[ :]", ln) for ln in lines), "\n".join(ln for ln in lines if not re.match(r"\d\d:\d\d:\d\d ", ln))[:3000]
    stamps = [dt.datetime.strptime(ln[:8], "%H:%M:%S") for ln in lines]
    assert max(((b - a).total_seconds() % 86400 for a, b in zip(stamps, stamps[1:])), default=0) <= 40, lines  # 25 s + the timer's 5 s + load
    progress = [ln for ln in lines if ln[8:11] == "   "]
    assert all(re.match(r"\d\d:\d\d:\d\d   [\w -]+:", ln) for ln in progress), progress
    lines = [ln for ln in lines if ln not in progress]
    # the shared graph-vector cache says, once per embedding stage, where the vectors came from and what is missing
    cache = [ln for ln in lines if re.match(r"\d\d:\d\d:\d\d (kge|gnn): (trained and stored in the cache|cache hit) ", ln)]
    assert [ln[9:12] for ln in cache] == ["kge", "gnn"] and all("missing" in ln for ln in cache), cache
    lines = [ln for ln in lines if ln not in cache]
    expected = [p for s in STEPS for p in (f"{s}: started, ", f"{s}: done in ")]
    assert len(lines) == len(expected) and all(ln[9:].startswith(e) for ln, e in zip(lines, expected)), lines


def test_the_chain_ends_in_explanations_with_paths_and_rationales(main_job):
    """The explain step: the student's recommendations for saved-split test visits, each drug with its
    rationale paths from the graph store and a rationale naming the drug; the step's counts are the file's."""
    from kgrec.workspace import load_cohort

    ws, out, _ = main_job
    step = next(s for s in out["steps"] if s["stage"] == "explain")
    saved = json.loads((ws / "reports" / "explanations.json").read_text())
    assert saved["model"] == step["output"]["model"] == "student"
    cohort = load_cohort(ws)
    test_patients = set(cohort.split["test"])
    pid = dict(zip(cohort.visits["visit_id"].astype(str), cohort.visits["patient_id"].astype(str)))
    assert len(saved["visits"]) == len(step["output"]["visits"]) == 3
    assert all(pid[v] in test_patients for v in step["output"]["visits"])
    drugs = [d for r in saved["visits"] for d in r["drugs"]]
    assert len(drugs) == step["output"]["n_drugs"] > 0
    assert sum(len(d["paths"]) for d in drugs) == step["output"]["n_paths"] > 0
    assert sum(len(r["ddi_warnings"]) for r in saved["visits"]) == step["output"]["n_ddi_warnings"]
    first = saved["visits"][0]["drugs"][0]
    assert step["output"]["example"] == {"visit": step["output"]["visits"][0], "drug": first["drug"], "rationale": first["rationale"]}
    for d in drugs:
        if d["paths"]:
            assert d["drug"] in d["rationale"], d["rationale"][:200]


def test_saved_teacher_and_student_reload_to_the_predictions_they_were_measured_with(main_job):
    """Each model's stage measured the in-memory model on the saved split's test visits; the model loaded
    back from the workspace must give exactly those numbers (and the same threshold)."""
    from kgrec.cohort.ddi import ddi_matrix
    from kgrec.cohort.samples import build_samples
    from kgrec.metrics import evaluate_predictions
    from kgrec.workspace import load_cohort, load_model

    ws, out, _ = main_job
    cohort = load_cohort(ws)
    test = build_samples(cohort, cohort.split["test"])
    for name, stage in (("teacher", "teacher"), ("student", "distill")):
        trained = out["stages"]["results"][stage]
        model = load_model(ws, name)
        proba = model.predict_proba(cohort, test)
        again = load_model(ws, name).predict_proba(cohort, test)
        assert (proba == again).all(), name
        assert model.threshold == trained["chosen"]["threshold"], name
        ddi = ddi_matrix(cohort.ddi, model.drug_vocab) if cohort.ddi is not None else None
        got = evaluate_predictions(model.targets(test), proba, model.predict(proba), ddi, patients=test.patient_id, single_visit=test.single_visit, n_boot=0)
        want = trained["test"]["metrics"]
        assert set(want) <= set(got["metrics"]), name
        for metric, value in want.items():
            assert got["metrics"][metric] == pytest.approx(value, rel=1e-9, abs=1e-12), (name, metric)


def test_report_numbers_are_the_ones_kgrec_evaluate_gives(main_job):
    ws, out, _ = main_job
    p = kgrec("evaluate", "-w", str(ws), "--folds", "2", *[a for m in MODELS for a in ("-m", m)], "--json")
    assert p.returncode == 0, p.stderr[-3000:]
    ev = json.loads(p.stdout)
    run_report = out["evaluation"]
    assert set(ev["models"]) == set(run_report["models"]) == set(MODELS)
    for model in MODELS:
        for metric, v in run_report["models"][model]["metrics"].items():
            assert ev["models"][model]["metrics"][metric]["folds"] == pytest.approx(v["folds"], rel=1e-9), (model, metric)
    assert ev.get("paired_differences") == run_report.get("paired_differences")
