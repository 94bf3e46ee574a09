"""The pooled, distilled student (kgrec.transfer.distill / deploy): distilled from a registered pooled model,
deployed to WORKSPACE/student with its provenance, refused when stale, never half-written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from kgrec.cohort.samples import build_samples
from kgrec.cohort.split import split_patients
from kgrec.errors import OptionError, WorkspaceError
from kgrec.transfer.pool import load_site, pool, prefixed
from tests.conftest import requires_real_data
from tests.test_transfer import graph_tables, make_cohort

FAST = {"graph": False, "epochs": 40, "patience": 8}


def site(root, name: str, version: int, n: int, seed: int, graph: bool = True, split: bool = True):
    c = make_cohort(name, n, seed, version)
    if split:
        c.split = {"seed": 0, **split_patients(c.visits["patient_id"].unique(), (0.7, 0.15, 0.15), 0)}
    ws = root / name
    c.save(ws / "cohort")
    if graph:
        graph_tables().save(ws / "graph" / "tables")
    return ws


@pytest.fixture
def two_sites(tmp_path):
    return site(tmp_path, "icd10", 10, 50, 2), site(tmp_path, "icd9", 9, 90, 1, graph=False)


def pooled_fold(target, source):
    cohort, report = pool(load_site(target), [load_site(source)])
    tname = report["target"]
    split = load_site(target).cohort.split
    src = sorted(set(cohort.visits.loc[cohort.visits["site"] != tname, "patient_id"]))
    tr = build_samples(cohort, prefixed(tname, split["train"]) + src)
    va, te = (build_samples(cohort, prefixed(tname, split[p])) for p in ("val", "test"))
    return cohort, tr, va, te


def test_the_student_learns_from_the_teachers_soft_targets_and_reuses_the_folds_teacher(two_sites):
    from kgrec.models.graph_logreg import GraphLogRegRecommender
    from kgrec.models.memo import remember
    from kgrec.transfer.distill import PooledStudent

    target, source = two_sites
    cohort, tr, va, te = pooled_fold(target, source)
    vocab = load_site(target).cohort.vocab("drug")
    teacher = GraphLogRegRecommender(vocab, workspace=target).fit(cohort, tr, va)
    remember("logreg-graph", teacher, cohort, tr, va)
    p_t = teacher.predict_proba(cohort, tr)
    gaps = {}
    for beta in (0.0, 4.0):
        ps = PooledStudent(vocab, target, "logreg-graph", {**FAST, "beta": beta}).fit(cohort, tr, va)
        assert ps.chosen["teacher_reused_from_its_own_row"] and ps.teacher_model is teacher  # not fitted twice
        assert ps.chosen["sites"] == ["icd10", "icd9"] and ps.chosen["student_config"]["concepts"] is True
        gaps[beta] = float(np.abs(ps.predict_proba(cohort, tr) - p_t).mean())
        assert ps.predict_proba(cohort, te).shape == (len(te), len(vocab))
    assert gaps[4.0] < 0.8 * gaps[0.0], gaps  # the soft targets pull the student toward its teacher
    # another fold: the remembered teacher is not reused
    ps = PooledStudent(vocab, target, "logreg-graph", FAST).fit(cohort, va, tr)
    assert not ps.chosen["teacher_reused_from_its_own_row"] and ps.teacher_model is not teacher


def test_site_ensemble_reuses_the_folds_logreg_graph_fit_and_predicts_as_a_fresh_fit(two_sites):
    from kgrec.models.graph_logreg import GraphLogRegRecommender, SiteEnsembleRecommender
    from kgrec.models.memo import forget, remember

    target, source = two_sites
    cohort, tr, va, te = pooled_fold(target, source)
    vocab = load_site(target).cohort.vocab("drug")
    fresh = SiteEnsembleRecommender(vocab, workspace=target).fit(cohort, tr, va)
    g = GraphLogRegRecommender(vocab, workspace=target).fit(cohort, tr, va)
    remember("logreg-graph", g, cohort, tr, va)
    reused = SiteEnsembleRecommender(vocab, workspace=target).fit(cohort, tr, va)
    assert reused.graph is g and fresh.graph is not g
    np.testing.assert_allclose(reused.predict_proba(cohort, te), fresh.predict_proba(cohort, te), atol=1e-12)
    other = SiteEnsembleRecommender(vocab, workspace=target, seed=3).fit(cohort, tr, va)  # other settings: its own fit
    assert other.graph is not g
    forget()


def test_unknown_or_student_teacher_is_refused_before_any_work():
    from kgrec.transfer.distill import PooledStudent, check_teacher

    with pytest.raises(OptionError, match="not a registered model.*site-ensemble-names"):
        check_teacher("gamenet-ish")
    with pytest.raises(OptionError, match="a student cannot be the teacher"):
        PooledStudent(["A01A"], None, "student")


def test_deployed_pooled_student_has_provenance_is_what_recommend_serves_and_is_refused_when_stale(two_sites, monkeypatch):
    from kgrec.explain.recommend import RecommendService
    from kgrec.student.train import StudentConfig, StudentRecommender, workspace_student_config
    from kgrec.transfer.deploy import train_pooled_on_split
    from kgrec.workspace import cohort_key, graph_key, load_model

    target, source = two_sites
    # an in-domain student first, with its own settings, which the in-domain evaluation keeps after the swap
    cohort = load_site(target).cohort
    own = StudentRecommender(cohort.vocab("drug"), None, StudentConfig(alpha=0, beta=0, graph=False, epochs=5, dim=16))
    s = build_samples(cohort, cohort.split["train"])
    own.fit(cohort, s, build_samples(cohort, cohort.split["val"]))
    own.save(target / "student")
    res = train_pooled_on_split(target, [source], "logreg-graph", FAST)
    prov = json.loads((target / "student" / "provenance.json").read_text())
    assert prov["model"] == "student-pooled" and prov["teacher"] == "logreg-graph" and prov["target"] == "icd10"
    assert prov["sites"]["icd10"]["cohort_key"] == cohort_key(target) and prov["sites"]["icd9"]["cohort_key"] == cohort_key(source)
    assert prov["graph_key"] == graph_key(target) and prov["drug_vocab"] == cohort.vocab("drug")
    assert prov["trained_on"]["n_train_visits"] > len(s)  # the pooled site's visits too
    assert res.test["metrics"]["prauc"] > 0.5 and "prauc" in res.teacher_test["metrics"]
    assert workspace_student_config(target)[0].dim == 16  # in-domain runs keep the in-domain student's settings
    model = load_model(target, "student")
    assert model.provenance["model"] == "student-pooled"
    with RecommendService(target, "student", store=None) as svc:
        out = svc.recommend(visit_id=str(cohort.visits["visit_id"].iat[0])).to_dict()
    assert out["model"]["name"] == "student" and out["model"]["kind"] == "student-pooled"
    assert set(out["model"]["sites"]) == {"icd10", "icd9"} and out["model"]["teacher"] == "logreg-graph"

    # the deployed wide student scores in numpy: the same logits as its torch form, and a fresh process
    # answers without importing torch (issue 25 item 5: its import was most of a `kgrec recommend`)
    import subprocess
    import sys

    import torch

    from kgrec.student.concepts import as_tensors

    assert model.name == "student-wide"
    samples = build_samples(cohort, cohort.split["test"])
    net = model._build()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in model.weights.items()})
    with torch.no_grad():
        z_torch = net.eval()(as_tensors(model._arrays(cohort, samples))).numpy()
    np.testing.assert_allclose(model._logits(model._arrays(cohort, samples)), z_torch, rtol=1e-5, atol=1e-5)
    vid = str(cohort.visits["visit_id"].iat[0])
    code = ("import sys, json; from kgrec.explain.recommend import RecommendService; "
            f"r = RecommendService({str(target)!r}, 'student', store=None).recommend(visit_id={vid!r}).to_dict(); "
            "print(json.dumps({'torch': 'torch' in sys.modules, 'p': [d['probability'] for d in r['drugs']]}))")
    got = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()[-1])
    assert got == {"torch": False, "p": [d["probability"] for d in out["drugs"]]}

    # a save that dies half-way leaves the deployed student whole
    before = {p.name: p.read_bytes() for p in (target / "student").iterdir()}

    def dies(self, folder):
        (folder / "student.safetensors").write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    from kgrec.student.linear import WideStudent

    monkeypatch.setattr(StudentRecommender, "save", dies)
    monkeypatch.setattr(WideStudent, "save", dies)
    with pytest.raises(OSError):
        train_pooled_on_split(target, [source], "logreg-graph", FAST)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in (target / "student").iterdir()} == before
    assert not [p for p in target.iterdir() if p.name.startswith(".student")]

    # no drug shared with the pooled site: refused, nothing written
    alien = make_cohort("alien", 20, 5, 9)
    alien.visits["drugs"] = [["Z99Z"]] * len(alien.visits)
    alien.save(target.parent / "alien" / "cohort")
    with pytest.raises(WorkspaceError, match="share no ATC3 class"):
        train_pooled_on_split(target, [target.parent / "alien"], "logreg-graph", FAST)
    assert {p.name: p.read_bytes() for p in (target / "student").iterdir()} == before

    # the graph loaded again with other content, then the cohort prepared again: each named, with the command
    tables = graph_tables()
    tables.nodes["Disease"] = tables.nodes["Disease"].iloc[:-1]
    tables.save(target / "graph" / "tables")
    with pytest.raises(WorkspaceError, match="graph was loaded again.*kgrec train --stage distill -w .*--pool .*icd9 --teacher logreg-graph"):
        load_model(target, "student")
    graph_tables().save(target / "graph" / "tables")
    load_model(target, "student")  # the same content again: current
    other = make_cohort("icd10", 50, 3, 10)
    other.split = cohort.split
    other.save(target / "cohort")
    with pytest.raises(WorkspaceError, match="cohort was prepared again"):
        RecommendService(target, "student", store=None)


def test_cli_distill_pool_bad_inputs_are_one_line_errors(two_sites, tmp_path):
    from kgrec.cli import app

    target, source = two_sites
    r = CliRunner().invoke(app, ["train", "--stage", "distill", "-w", str(target), "--pool", str(source), "--teacher", "nope"])
    assert r.exit_code == 2 and "not a registered model" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["train", "--stage", "distill", "-w", str(target), "--pool", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "neither a workspace" in r.output
    assert not (target / "student").exists()


@requires_real_data
def test_kgrec_run_pool_deploys_the_pooled_student_and_explains_with_it(tmp_path):
    """The main command with another site pooled, at test settings: the distill stage deploys
    student-pooled, the pool step evaluates it beside its teacher, the explain step and `recommend` use it
    and say so; the same command without --pool deploys the in-domain student again."""
    from tests.test_main_job import kgrec

    planted = site(tmp_path, "planted", 9, 60, 3, graph=False)
    ws = tmp_path / "m3"
    fast = ["--folds", "2", "--kge-epochs", "1", "--kge-dim", "8", "--gnn-epochs", "5", "--student-epochs", "5", "-m", "logreg", "-m", "student"]
    p = kgrec("run", "-w", str(ws), *fast, "--pool", str(planted), "--pool-model", "logreg", "--pool-teacher", "logreg-graph", "--json")
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout)
    steps = {s["stage"]: s for s in out["steps"]}
    assert [s["stage"] for s in out["steps"]][-3:] == ["evaluate", "pool", "explain"]
    assert steps["distill"]["output"]["deployed"] == "student-pooled" and "pooled logreg-graph" in p.stderr
    prov = json.loads((ws / "student" / "provenance.json").read_text())
    assert prov["model"] == "student-pooled" and prov["teacher"] == "logreg-graph" and set(prov["sites"]) == {"mimic3", "planted"}
    pooled = out["pooled"]["modes"]["pooled"]["models"]
    assert set(pooled) == {"logreg", "student-pooled"}
    assert prov["cross_validation"]["prauc"]["folds"] == pooled["student-pooled"]["metrics"]["prauc"]["folds"]
    assert set(out["pooled"]["vs_run_models"]["student-pooled"]) == {"logreg", "student"}
    saved = json.loads((ws / "reports" / "explanations.json").read_text())
    assert saved["deployed"]["kind"] == "student-pooled" and steps["explain"]["output"]["deployed"] == "student-pooled"
    visit = steps["explain"]["output"]["visits"][0]
    r = kgrec("recommend", "-w", str(ws), "--visit", visit, "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    model = json.loads(r.stdout)["model"]
    assert model["kind"] == "student-pooled" and model["cross_validation"]["folds"] == 2 and set(model["sites"]) == {"mimic3", "planted"}
    # without --pool: today's behaviour, the in-domain student
    p = kgrec("run", "-w", str(ws), *fast, "--json")
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads((ws / "student" / "provenance.json").read_text())["model"] == "student"
