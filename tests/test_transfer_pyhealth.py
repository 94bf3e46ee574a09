"""PyHealth's models in `kgrec transfer`: trained in every mode on the same pooled visits as kgrec's, through
the benchmark's file exchange, with a stand-in runner (the real one needs PyHealth's own venv)."""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from kgrec.benchmark import run_benchmark
from kgrec.cohort.base import Cohort
from kgrec.cohort.samples import build_samples
from kgrec.errors import KgrecError, OptionError
from kgrec.transfer import external, run_transfer
from kgrec.transfer.external import PyHealthRecommender, PyHealthSettings
from tests.fake_pyhealth import FAKE_RUNNER
from tests.test_transfer import make_workspace

@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    root = tmp_path_factory.mktemp("ph-sites")
    return make_workspace(root, "icd10", 10, 45, 2), make_workspace(root, "icd9", 9, 100, 1, graph=False)


@pytest.fixture
def fake_runner(tmp_path, monkeypatch) -> Path:
    """A stand-in runner; returns the file that logs its calls."""
    script, calls = tmp_path / "fake_runner.py", tmp_path / "calls.jsonl"
    script.write_text(FAKE_RUNNER)
    monkeypatch.setattr(external, "RUNNER_CMD", [sys.executable, str(script), str(calls)])
    for var in ("KGREC_PYHEALTH_EPOCHS", "KGREC_PYHEALTH_DEVICE", "KGREC_PYHEALTH_TIMEOUT", "KGREC_PYHEALTH_HISTORY"):
        monkeypatch.delenv(var, raising=False)
    return calls


def _calls(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_pyhealth_model_runs_in_zero_shot_and_pooled_once_per_fit_with_evaluate_rows_and_pairs(sites, fake_runner):
    target, source = sites
    res = run_transfer(target, [source], modes=("zero-shot", "pooled"), models=("logreg", "gamenet"), folds=2)
    j = json.loads(json.dumps(res.to_json(), default=float))
    for mode in ("in-domain", "zero-shot", "pooled"):
        r = j["modes"][mode]
        assert list(r["models"]) == ["logreg", "GAMENet"], mode  # PyHealth's spelling, whatever the case asked
        g = r["models"]["GAMENet"]
        assert len(g["metrics"]["prauc"]["folds"]) == 2 and g["groups"]["multi_visit"]["n_visits"] > 0
        assert set(g["metrics"]) == set(r["models"]["logreg"]["metrics"])
        info = g["chosen"][0]["pyhealth"]
        assert info["versions"]["pyhealth"] == "fake" and info["train_seconds"] == 1.5 and info["runner_seconds"] > 0
        if mode != "in-domain":
            for key in ("paired_differences", "paired_vs_in_domain_same_model"):
                assert len(r[key]["GAMENet"]["prauc"]["folds"]) == 2, (mode, key)
    assert j["modes"]["zero-shot"]["paired_differences"]["reference"] == "in-domain logreg"

    # one runner call per fit: 2 in-domain folds, 1 zero-shot fit (every fold's test set and all target
    # visits come from it), 2 pooled folds
    calls = _calls(fake_runner)
    assert len(calls) == 5 and all(c["models"] == ["GAMENet"] for c in calls)
    assert calls[0]["config"]["epochs"] == 20 and calls[0]["config"]["seed"] == 42
    zs = [c for c in calls if not any(p.startswith("icd10") for p in c["patients"]["train"])]
    assert len(zs) == 1
    zs = zs[0]
    # zero-shot trains on the source alone; its test part is every target patient (and only those)
    assert all(p.startswith("icd9") for p in zs["patients"]["train"] + zs["patients"]["val"])
    n_target = Cohort.load(target / "cohort").visits["patient_id"].nunique()
    assert len(zs["patients"]["test"]) == n_target and all(p.startswith("icd10") for p in zs["patients"]["test"])
    folds = j["modes"]["zero-shot"]["models"]["GAMENet"]["chosen"]
    assert folds[0]["pyhealth"]["folder"] == folds[1]["pyhealth"]["folder"] == zs["dir"]
    for c in calls:  # test: every patient in neither train nor val
        assert not set(c["patients"]["test"]) & (set(c["patients"]["train"]) | set(c["patients"]["val"]))

    # the zero-shot numbers on all target visits are kgrec's metrics of the runner's probabilities
    folder = Path(zs["dir"])
    p_val, p_test = np.load(folder / "out" / "GAMENet" / "val.npy"), np.load(folder / "out" / "GAMENet" / "test.npy")
    assert np.isfinite(p_val).all() and p_test.shape[1] == j["pooling"]["zero_shot_vocabulary"]["n_zero_shot_drugs"]
    assert j["modes"]["zero-shot"]["models"]["GAMENet"]["all_target_visits"]["metrics"]["prauc"] > 0


def test_the_adapter_answers_only_the_visits_it_scored_and_raises_the_runners_failure(sites, fake_runner):
    target, _ = sites
    cohort = Cohort.load(target / "cohort")
    pats = sorted(cohort.visits["patient_id"].unique())
    train, val, test = build_samples(cohort, pats[:25]), build_samples(cohort, pats[25:33]), build_samples(cohort, pats[33:])
    vocab = cohort.vocab("drug")
    m = PyHealthRecommender(vocab, "GAMENet", target).fit(cohort, train, val)
    whole = m.predict_proba(cohort, test)
    part = m.predict_proba(cohort, test.subset([3, 0]))
    assert np.array_equal(part, whole[[3, 0]])
    assert len(_calls(fake_runner)) == 1  # answered from the one run
    assert m.chosen["pyhealth"]["n_scored"] == len(test)
    out = Path(m.chosen["pyhealth"]["folder"]) / "out" / "GAMENet"  # rows by visit: validation first, then the rest
    assert np.array_equal(whole, np.load(out / "test.npy")) and np.array_equal(m.predict_proba(cohort, val), np.load(out / "val.npy"))
    with pytest.raises(ValueError, match="not scored by PyHealth"):
        m.predict_proba(cohort, train)
    with pytest.raises(KgrecError, match="fake RETAIN cannot import its layer") as err:
        PyHealthRecommender(vocab, "retain", target).fit(cohort, train, val).predict_proba(cohort, val)
    assert "runner.log" in str(err.value)


def test_unknown_model_fails_before_any_work(sites, fake_runner):
    target, source = sites
    with pytest.raises(OptionError, match="unknown model 'GAMENett'.*GAMENet, SafeDrug, RETAIN, MoleRec"):
        run_transfer(target, [source], modes=("zero-shot",), models=("logreg", "GAMENett"), folds=2)
    assert _calls(fake_runner) == []


def test_without_pyhealths_venv_the_run_stops_before_training_and_says_how_to_set_it_up(sites, tmp_path, monkeypatch):
    target, source = sites
    monkeypatch.setattr(external, "RUNNER_CMD", None)
    monkeypatch.setattr(external, "_READY", {})
    monkeypatch.setenv("KGREC_PYHEALTH_VENV", str(tmp_path / "no-venv"))

    def no_training(*a, **k):
        raise AssertionError("trained before checking PyHealth")

    monkeypatch.setattr("kgrec.transfer.protocol.fit_model", no_training)
    with pytest.raises(KgrecError, match=r"no PyHealth venv at .*no-venv.*kgrec benchmark --setup-pyhealth"):
        run_transfer(target, [source], modes=("zero-shot",), models=("logreg", "SafeDrug"), folds=2)


def test_runner_settings_are_the_benchmarks_defaults_and_the_environment_overrides_them():
    sig = inspect.signature(run_benchmark).parameters
    s = PyHealthSettings()
    for ours, theirs in (("epochs", "epochs"), ("batch_size", "batch_size"), ("lr", "lr"), ("patience", "patience"), ("device", "device"),
                         ("timeout", "pyhealth_timeout"), ("max_history", "pyhealth_history"), ("seed", "seed")):
        assert getattr(s, ours) == sig[theirs].default, ours
    got = PyHealthSettings.from_env({"KGREC_PYHEALTH_EPOCHS": "3", "KGREC_PYHEALTH_DEVICE": "cuda", "KGREC_PYHEALTH_HISTORY": "0"})
    assert (got.epochs, got.device, got.max_history, got.timeout) == (3, "cuda", 0, None)
    with pytest.raises(OptionError, match="KGREC_PYHEALTH_EPOCHS='many'"):
        PyHealthSettings.from_env({"KGREC_PYHEALTH_EPOCHS": "many"})
    with pytest.raises(OptionError, match="KGREC_PYHEALTH_TIMEOUT='0'"):
        PyHealthSettings.from_env({"KGREC_PYHEALTH_TIMEOUT": "0"})
