"""Splits, baselines, the evaluation protocol and the prepare/evaluate commands."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import kgrec
from kgrec.cli import app
from kgrec.cohort.base import Cohort
from kgrec.cohort.samples import build_samples
from kgrec.cohort.split import kfold_patients, split_patients
from kgrec.evaluation import evaluate_models
from kgrec.models.baselines import FrequencyRecommender, LogRegRecommender
from tests.conftest import real_data_dir, requires_real_data

runner = CliRunner()


def synthetic_cohort(n_patients: int = 60, seed: int = 0) -> Cohort:
    """Diagnosis d_k implies drug D_k (plus noise): logistic regression must beat frequency here."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        for o in range(int(rng.integers(1, 4))):
            dx = sorted({f"ICD9CM:{k}" for k in rng.choice(6, size=2, replace=False)})
            drugs = sorted({f"A0{k[-1]}A" for k in dx} | ({"B01A"} if rng.random() < 0.5 else set()))
            rows.append((f"p{p}", f"v{p}_{o}", o, pd.NaT, dx, [], drugs))
    visits = pd.DataFrame(rows, columns=["patient_id", "visit_id", "visit_order", "time", "diagnoses", "procedures", "drugs"])
    codes = pd.DataFrame({"code": ["B01A"], "kind": ["drug"], "name": ["antithrombotic agents"]})
    pats = visits["patient_id"].unique()
    return Cohort(visits, codes, "synthetic", {}, {"seed": 0, **split_patients(pats, seed=0)}, None)


def test_split_is_patient_disjoint_and_seeded():
    pats = [f"p{i}" for i in range(101)]
    a, b = split_patients(pats, seed=1), split_patients(pats, seed=1)
    assert a == b
    assert (len(a["train"]), len(a["val"]), len(a["test"])) == (81, 10, 10)
    assert not set(a["train"]) & set(a["test"]) and not set(a["val"]) & set(a["test"])
    assert split_patients(pats, seed=2) != a


def test_kfold_covers_each_patient_once_in_test():
    pats = [f"p{i}" for i in range(23)]
    folds = list(kfold_patients(pats, k=5, seed=0))
    tests = [set(f["test"]) for f in folds]
    assert set().union(*tests) == set(pats) and sum(map(len, tests)) == 23
    for f in folds:
        assert not set(f["train"]) & set(f["test"]) and not set(f["val"]) & (set(f["train"]) | set(f["test"]))
        assert len(f["val"]) >= 1
    with pytest.raises(ValueError, match="at least 2"):
        list(kfold_patients(pats, k=1))


def test_samples_history_is_earlier_visits_of_same_patient():
    c = synthetic_cohort()
    s = build_samples(c)
    v = c.visits
    for i, hist in zip(s.visit_idx, s.history):
        assert all(v["patient_id"].iat[j] == v["patient_id"].iat[i] for j in hist)
        assert sorted(v["visit_order"].iat[j] for j in hist) == list(range(v["visit_order"].iat[i]))


def test_logreg_learns_what_frequency_cannot():
    res = evaluate_models(synthetic_cohort(120), ["frequency", "logreg"], folds=3, seed=0)
    f, lr = res.models["frequency"].summary["metrics"], res.models["logreg"].summary["metrics"]
    assert lr["prauc"]["mean"] > f["prauc"]["mean"] + 0.15
    assert lr["jaccard"]["mean"] > 0.8
    assert res.paired["frequency"]["prauc"]["n_better"] == 0
    assert len(res.models["logreg"].summary["metrics"]["prauc"]["folds"]) == 3


def test_frequency_probability_is_training_share():
    c = synthetic_cohort()
    train = build_samples(c, c.split["train"])
    m = FrequencyRecommender(c.vocab("drug")).fit(c, train, train)
    y = m.targets(train)
    np.testing.assert_allclose(m.predict_proba(c, train)[0], y.mean(0))


def test_empty_vocabulary_is_an_error():
    with pytest.raises(ValueError, match="empty drug vocabulary"):
        LogRegRecommender([])


def test_cli_prepare_and_evaluate_json(tmp_path, mini_data):
    ws = tmp_path / "ws"
    r = runner.invoke(app, ["prepare", "-s", "mimic3", "-w", str(ws), "--data-dir", str(mini_data), "--json"])
    assert r.exit_code == 0, r.output
    stats = json.loads(r.stdout)
    for key in ("n_patients", "n_visits", "n_single_visit_patients", "n_diagnosis_codes", "n_procedure_codes", "n_drugs", "drug_mapping_coverage", "split"):
        assert key in stats
    assert stats["n_visits"] == 4 and stats["drug_mapping_coverage"] == 0.75
    r = runner.invoke(app, ["evaluate", "-w", str(ws), "--json", "--n-boot", "50"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert isinstance(out["models"]["logreg"]["metrics"]["jaccard"], float)
    assert (ws / "reports").is_dir()


def test_cli_errors_exit_nonzero_with_message(tmp_path, mini_data):
    r = runner.invoke(app, ["evaluate", "-w", str(tmp_path / "nothing")])
    assert r.exit_code == 2 and "run `kgrec prepare` first" in r.output
    r = runner.invoke(app, ["prepare", "-s", "mimic3", "-w", str(tmp_path / "w"), "--data-dir", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "missing" in r.output
    r = runner.invoke(app, ["prepare", "-s", "nope", "-w", str(tmp_path / "w"), "--data-dir", str(mini_data)])
    assert r.exit_code != 0


@requires_real_data
def test_real_mimic3_baselines_cv(tmp_path):
    ws = tmp_path / "ws"
    kgrec.prepare("mimic3", ws, data_dir=real_data_dir())
    res = kgrec.evaluate(ws, folds=5)
    lr = res.models["logreg"].summary["metrics"]
    fr = res.models["frequency"].summary["metrics"]
    # the independent reference run measured PRAUC 0.641 (frequency) and 0.664 (logreg)
    assert 0.58 < fr["prauc"]["mean"] < 0.70 and 0.60 < lr["prauc"]["mean"] < 0.72
    assert lr["prauc"]["mean"] > fr["prauc"]["mean"]


def test_cli_run_chains_prepare_graph_and_evaluate(tmp_path, mini_data, monkeypatch):
    from kgrec.graph import load as graph_load
    from tests.graph_tiny import tiny_tables

    # the mini data folder holds only the code maps: build the graph from the tiny hand-made tables
    monkeypatch.setattr(graph_load, "_build_graph", lambda data_dir, **kw: type("B", (), {"tables": tiny_tables(), "report": {}})())
    ws = tmp_path / "ws"
    r = runner.invoke(app, ["run", "-s", "mimic3", "-w", str(ws), "--data-dir", str(mini_data), "--folds", "2", "-m", "frequency", "-m", "logreg", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["stats"]["n_visits"] == 4
    assert set(out["evaluation"]["models"]) == {"frequency", "logreg"}
    assert len(out["evaluation"]["models"]["logreg"]["metrics"]["jaccard"]["folds"]) == 2
    assert (ws / "cohort" / "visits.parquet").exists()
    assert out["graph"]["n_nodes"] > 0 and (ws / "graph" / "tables" / "nodes").is_dir()


def test_cli_run_trains_the_model_stages_before_evaluating_them(tmp_path, mini_data, monkeypatch):
    """With teacher/student among the models, `kgrec run` chains kge -> gnn -> teacher -> distill (patients
    left out of the embeddings under CV, the CPU teacher unless told otherwise) before the evaluation."""
    import kgrec.api as api
    import kgrec.stages as stages
    from kgrec.graph import load as graph_load
    from tests.graph_tiny import tiny_tables

    monkeypatch.setattr(graph_load, "_build_graph", lambda data_dir, **kw: type("B", (), {"tables": tiny_tables(), "report": {}})())
    calls = []
    monkeypatch.setattr(stages, "run_all", lambda ws, settings, **kw: calls.append(("train", settings)) or stages.AllResult(ran=list(stages.STAGES)))
    real_evaluate = api.evaluate
    monkeypatch.setattr(api, "evaluate", lambda ws, models, **kw: calls.append(("evaluate", tuple(models))) or real_evaluate(ws, ("frequency",), **kw))
    ws = tmp_path / "ws"
    r = runner.invoke(app, ["run", "-s", "mimic3", "-w", str(ws), "--data-dir", str(mini_data), "--folds", "2", "--teacher-lora-r", "8", "--json"])
    assert r.exit_code == 0, r.output
    assert [c[0] for c in calls] == ["train", "evaluate"]
    settings = calls[0][1]
    assert settings["kge"]["patients"] == "none" and settings["gnn"]["patients"] == "none"
    assert settings["teacher"]["lora_r"] == 8 and settings["teacher"]["fuse_codes"] is True and settings["teacher"]["graph_prompt"] is False
    assert calls[1][1] == ("frequency", "logreg", "logreg-graph", "teacher", "student")
    assert json.loads(r.stdout)["stages"]["ran"] == list(stages.STAGES)
