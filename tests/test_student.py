"""The student: learning, distillation plumbing, graph inputs, save/load, speed."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from kgrec.cohort.samples import build_samples
from kgrec.embed.kge import KGEResult
from kgrec.evaluation import evaluate_models
from kgrec.graph.tables import GraphTables
from kgrec.student.train import StudentConfig, StudentRecommender
from tests.test_evaluation import synthetic_cohort

FAST = dict(dim=16, epochs=40, patience=10, batch_size=64)


def test_student_learns_code_drug_structure():
    c = synthetic_cohort(90)
    cfg = StudentConfig(alpha=0, beta=0, graph=False, dim=16, epochs=60, patience=15, batch_size=64)
    res = evaluate_models(c, ["frequency", ("student", lambda v: StudentRecommender(v, None, cfg))], folds=3, seed=0)
    st, fr = res.models["student"].summary["metrics"], res.models["frequency"].summary["metrics"]
    assert st["prauc"]["mean"] > fr["prauc"]["mean"] + 0.15
    assert st["jaccard"]["mean"] > fr["jaccard"]["mean"] + 0.2


def test_distillation_needs_a_teacher_and_uses_it():
    c = synthetic_cohort(60)
    train, val = build_samples(c, c.split["train"]), build_samples(c, c.split["val"])
    vocab = c.vocab("drug")
    with pytest.raises(ValueError, match="needs teacher features"):
        StudentRecommender(vocab, None, StudentConfig(alpha=1.0, graph=False, **FAST)).fit(c, train, val)
    calls = []

    def teacher(cohort, tr, va):
        # an oracle teacher: its features encode the targets, its logits are confident
        calls.append(len(tr))
        y = StudentRecommender(vocab).targets(tr).astype(np.float32)
        rng = np.random.default_rng(0)
        return y @ rng.normal(size=(len(vocab), 12)).astype(np.float32), (y * 8 - 4)

    m = StudentRecommender(vocab, None, StudentConfig(alpha=1.0, beta=0.5, graph=False, **FAST), teacher=teacher).fit(c, train, val)
    assert calls == [len(train)]
    assert m.predict_proba(c, val).shape == (len(val), len(vocab))
    assert len(m.history) >= 1 and m.history[0]["loss"] > m.history[-1]["loss"]


def graph_workspace(tmp_path, cohort):
    """Graph tables linking ICD9CM:k -> Disease k <- ingredient k -> drug A0kA, and random vectors."""
    ws = tmp_path / "ws"
    codes = [f"ICD9CM:{k}" for k in range(6)] + ["ICD9CM:9"]  # code 9 never occurs in visits
    drugs = sorted({d for ds in cohort.visits["drugs"] for d in ds})
    nodes = {
        "DiagnosisCode": pd.DataFrame({"id": codes}),
        "Disease": pd.DataFrame({"id": [f"DOID:{k}" for k in range(6)] + ["DOID:9"]}),
        "Ingredient": pd.DataFrame({"id": [f"DB{k}" for k in range(6)]}),
        "Drug": pd.DataFrame({"id": drugs}),
    }
    e = lambda rows: pd.DataFrame(rows, columns=["src", "dst"]).assign(source="t", licence="CC0")  # noqa: E731
    edges = {
        "MAPS_TO": e([(f"ICD9CM:{k}", f"DOID:{k}") for k in range(6)] + [("ICD9CM:9", "DOID:9")]),
        "INDICATION": e([(f"DB{k}", f"DOID:{k}") for k in range(6)] + [("DB1", "DOID:9")]).assign(kind="treats"),
        "IN_CLASS": e([(f"DB{k}", f"A0{k}A") for k in range(6)]),
    }
    GraphTables(nodes, edges).save(ws / "graph" / "tables")
    ents = [f"{label}:{i}" for label, df in nodes.items() for i in df["id"]]
    rng = np.random.default_rng(0)
    KGEResult(rng.normal(size=(len(ents), 8)).astype(np.float32), np.zeros((1, 8), np.float32), ents, ["r"], {}, {}).save(ws / "embed" / "kge")
    return ws


def test_graph_inputs_prior_and_unseen_codes(tmp_path):
    c = synthetic_cohort(40)
    ws = graph_workspace(tmp_path, c)
    train, val = build_samples(c, c.split["train"]), build_samples(c, c.split["val"])
    m = StudentRecommender(c.vocab("drug"), ws, StudentConfig(alpha=0, beta=0, **FAST)).fit(c, train, val)
    fz = m.featurizer
    assert fz.graph_parts == ("kge", "prior")
    b = fz.batch(c, val)
    # the prior of a visit with ICD9CM:k holds drug A0kA
    i = 0
    for code in val.diagnoses[i]:
        k = code.split(":")[1]
        assert b["prior"][i, c.vocab("drug").index(f"A0{k}A")] > 0
    assert np.abs(fz.code_vectors[1:]).sum(1).min() > 0  # every cohort code found its graph vector


def test_save_load_identical_and_fast(tmp_path):
    c = synthetic_cohort(40)
    ws = graph_workspace(tmp_path, c)
    train, val = build_samples(c, c.split["train"]), build_samples(c, c.split["val"])
    m = StudentRecommender(c.vocab("drug"), ws, StudentConfig(alpha=0, beta=0, **FAST)).fit(c, train, val)
    m.threshold = 0.4
    m.save(tmp_path / "student")
    back = StudentRecommender.load(tmp_path / "student")
    np.testing.assert_allclose(back.predict_proba(c, val), m.predict_proba(c, val), rtol=1e-6)
    assert back.threshold == 0.4
    one = val.subset([0])
    back.predict_proba(c, one)
    t0 = time.perf_counter()
    for _ in range(20):
        back.predict_proba(c, one)
    assert (time.perf_counter() - t0) / 20 < 0.05  # well under 50 ms per visit even on a busy CI core


def test_config_rejects_bad_settings():
    with pytest.raises(ValueError, match="alpha and beta"):
        StudentConfig(alpha=-1)
    with pytest.raises(ValueError, match="unknown student settings"):
        StudentConfig.from_dict({"alpah": 1})


def test_cli_distill_stage_trains_saves_and_loads(tmp_path):
    import json

    from typer.testing import CliRunner

    import kgrec.api as api
    from kgrec.cli import app

    c = synthetic_cohort(40)
    ws = graph_workspace(tmp_path, c)
    c.save(ws / "cohort")
    r = CliRunner().invoke(app, ["train", "--stage", "distill", "-w", str(ws), "--alpha", "0", "--beta", "0", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["stage"] == "distill" and 0 <= out["test"]["metrics"]["prauc"] <= 1
    m = api.load_model(ws, "student")
    test = build_samples(c, c.split["test"])
    assert m.predict_proba(c, test).shape == (len(test), len(c.vocab("drug")))
    # a workspace without a cohort is a clear error, not a traceback
    r = CliRunner().invoke(app, ["train", "--stage", "distill", "-w", str(tmp_path / "nothing"), "--alpha", "0", "--beta", "0"])
    assert r.exit_code == 2 and "kgrec prepare" in r.output


def test_vectorised_encode_equals_slot_by_slot_pooling():
    """The student gathers each code's vector and history-pooling score from per-vocabulary tables and
    pools earlier visits as weighted embedding bags; the numbers (and gradients) are those of computing
    every history slot on its own, as the model is defined."""
    import torch

    from kgrec.student.model import StudentModel

    torch.manual_seed(0)
    m = StudentModel(torch.randn(30, 8), torch.randn(12, 8), 20, 8, 11, dim=16).eval()
    n, h = 5, 3
    b = {"codes": torch.randint(0, 30, (n, 4)), "hist_codes": torch.randint(0, 30, (n, h, 6)), "hist_drugs": torch.randint(0, 12, (n, h, 4)),
         "hist_mask": torch.rand(n, h) > 0.3, "hist_age": torch.randint(0, 4, (n, h)), "prior": torch.rand(n, 11)}
    b["hist_codes"][0, 1] = 0
    b["hist_drugs"][0, 1] = 0  # an empty history visit pools to zero

    def slot_by_slot(self, batch):
        cur, hc, hd = batch["codes"], batch["hist_codes"], batch["hist_drugs"]
        current = self.pool_current(self._codes(cur), cur > 0)
        items = torch.cat([self._codes(hc), self._drugs(hd)], dim=2)
        visits = self.pool_visit(items, torch.cat([hc > 0, hd > 0], dim=2)) + self.recency(batch["hist_age"])
        history = self.pool_history(visits, batch["hist_mask"])
        p = batch["prior"]
        neigh = self.neighbourhood(p @ self.drug_vectors[1:1 + p.shape[1]] / p.sum(-1, keepdim=True).clamp(min=1e-6)) + self.no_history
        history = torch.where(batch["hist_mask"].any(-1, keepdim=True), history, neigh)
        return self.mlp(torch.cat([current, history, self.prior_in(p)], dim=-1))

    want, got = slot_by_slot(m, b), m.encode(b)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    g_want = torch.autograd.grad(want.sum(), m.pool_visit.score[0].weight)[0]
    g_got = torch.autograd.grad(m.encode(b).sum(), m.pool_visit.score[0].weight)[0]
    torch.testing.assert_close(g_got, g_want, atol=1e-5, rtol=1e-4)


def test_graph_prior_of_many_visits_is_computed_in_chunks_with_the_same_numbers():
    """At 100k visits the dense visit x code indicator behind the student's graph prior took 4.3 GB (and a
    transposed copy): it is built a chunk of visits at a time, with the same numbers bit for bit."""
    from types import SimpleNamespace

    from scipy import sparse

    from kgrec.student.train import Featurizer

    rng = np.random.default_rng(0)
    n_codes, n_drugs = 50, 7
    prior = sparse.random(n_codes + 1, n_drugs, density=0.3, random_state=0, format="csr", dtype=np.float64)
    fz = SimpleNamespace(prior=prior, codes=[f"c{i}" for i in range(n_codes)], drugs=[f"d{i}" for i in range(n_drugs)])
    cur = [sorted(rng.choice(np.arange(1, n_codes + 1), size=rng.integers(0, 9), replace=False).tolist()) for _ in range(101)]
    whole = Featurizer._prior_rows(fz, cur)
    dense = np.zeros((len(cur), n_codes + 1))
    for i, x in enumerate(cur):
        dense[i, x] = 1.0
    np.testing.assert_allclose(whole, dense @ prior.toarray(), rtol=1e-6)
    assert (Featurizer._prior_rows(fz, cur, chunk=8) == whole).all()
    assert whole.dtype == np.float32 and whole.shape == (101, n_drugs)
