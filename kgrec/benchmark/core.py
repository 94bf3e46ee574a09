"""`kgrec benchmark`: kgrec's models and PyHealth's drug-recommendation models side by side.

Every model sees the same target visits of the same patients (the workspace's saved split, and
optionally K patient-level folds), the same ATC3 drug vocabulary and the same DDI matrix. kgrec's own
models run in-process through the model registry; PyHealth's run in PyHealth's virtual environment
(:mod:`kgrec.benchmark.pyhealth_env`) and exchange visits and probabilities through files
(:mod:`kgrec.benchmark.exchange`). Whatever produced the probabilities, the decision threshold is chosen
the same way (mean Jaccard on the validation visits, :meth:`Recommender.tune_threshold`) and every
metric comes from :func:`kgrec.metrics.evaluate_predictions` (patient-bootstrap 95% intervals, single-
vs multi-visit groups). A model that cannot run keeps its row with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from kgrec.benchmark.pyhealth_runner import peak_rss_mb
from kgrec.cohort.base import Cohort
from kgrec.cohort.ddi import ddi_matrix
from kgrec.cohort.samples import Samples, build_samples
from kgrec.cohort.split import kfold_patients
from kgrec.errors import OptionError, WorkspaceError
from kgrec.metrics import evaluate_predictions
from kgrec.models.base import Recommender

BASELINES = ("frequency", "logreg")
KGREC_MODELS = ("frequency", "logreg", "teacher", "student")
PYHEALTH_MODELS = ("GAMENet", "SafeDrug", "RETAIN", "MoleRec")
# Trained already (`kgrec train --stage teacher|distill`, e.g. a 7B teacher on a GPU): loaded from the
# workspace and measured on the saved split they were trained on; never on folds (they saw those patients).
SAVED_MODELS = ("saved-teacher", "saved-student")
DEFAULT_MODELS = (*KGREC_MODELS, *PYHEALTH_MODELS)
ALIASES = {"baselines": BASELINES, "pyhealth": PYHEALTH_MODELS, "kgrec": KGREC_MODELS, "all": DEFAULT_MODELS}
PAIRED_METRICS = ("jaccard", "f1", "prauc")

Progress = Callable[[str, int, int], None]  # (message, steps done, steps in all)


def resolve_models(models: Sequence[str]) -> list[tuple[str, str]]:
    """``(name, family)`` pairs, family ``baseline``, ``kgrec`` or ``pyhealth``; names are matched
    case-insensitively, ``baselines``/``pyhealth``/``kgrec``/``all`` expand, duplicates drop."""
    from kgrec.models import MODELS

    known = [*MODELS, *SAVED_MODELS, *PYHEALTH_MODELS]
    lookup = {m.lower(): m for m in known}
    out: list[tuple[str, str]] = []
    for raw in models:
        for part in str(raw).split(","):
            key = part.strip()
            if not key:
                continue
            names = ALIASES.get(key.lower(), (key,))
            for n in names:
                name = lookup.get(n.lower())
                if name is None:
                    raise OptionError(f"unknown model {n!r}; choose from {', '.join(known)} (or baselines, pyhealth, kgrec, all)")
                fam = "pyhealth" if name in PYHEALTH_MODELS else ("baseline" if name in BASELINES else "kgrec")
                if all(name != o for o, _ in out):
                    out.append((name, fam))
    if not out:
        raise OptionError("no models to benchmark")
    return out


class _Fixed(Recommender):
    """Probabilities computed elsewhere (an external runner), behind the recommender interface, so the
    threshold is tuned by exactly the code that tunes kgrec's models."""

    name = "external"

    def __init__(self, vocab: list[str], by_part: dict[int, np.ndarray]):
        super().__init__(vocab)
        self.by_part = by_part

    def fit(self, cohort, train, val):
        return self

    def predict_proba(self, cohort, samples):
        return self.by_part[id(samples)]


@dataclass
class Row:
    """One model's benchmark outcome."""

    name: str
    family: str
    status: str = "ok"  # ok | error | skipped
    reason: str | None = None
    split: dict = field(default_factory=dict)
    folds: list[dict] = field(default_factory=list)
    fold_errors: list[str] = field(default_factory=list)
    summary: dict = field(default_factory=dict)  # aggregate over folds
    notes: list[str] = field(default_factory=list)
    detail: str | None = None  # traceback / log pointer

    def to_json(self) -> dict:
        out = {"family": self.family, "status": self.status}
        if self.reason:
            out["reason"] = self.reason
        if self.detail:
            out["detail"] = self.detail
        if self.notes:
            out["notes"] = self.notes
        if self.split:
            out["split"] = self.split
        if self.folds or self.fold_errors:
            out["folds"] = {"summary": self.summary, "per_fold": self.folds, "errors": self.fold_errors}
        return out


@dataclass
class BenchmarkResult:
    dataset: str
    workspace: str
    out: Path
    rows: dict[str, Row]
    n_folds: int | None
    config: dict
    cohort: dict
    paired: dict = field(default_factory=dict)
    reference: str | None = None
    pyhealth: dict | None = None
    seconds: float = 0.0
    files: dict = field(default_factory=dict)
    curves: dict = field(default_factory=dict)  # name -> (y_true, proba) on the saved split's test part

    def to_json(self) -> dict:
        out = {
            "dataset": self.dataset, "workspace": self.workspace, "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "config": self.config, "cohort": self.cohort, "folds": self.n_folds,
            "models": {n: r.to_json() for n, r in self.rows.items()},
            "pyhealth": self.pyhealth, "seconds": round(self.seconds, 2), "files": self.files,
        }
        if self.reference:
            out["paired_differences"] = {"reference": self.reference, **self.paired}
        return out


def _evaluate(model: Recommender, cohort: Cohort, ddi: np.ndarray, train: Samples, val: Samples, test: Samples, n_boot: int, seed: int, fit: bool = True) -> tuple[dict, np.ndarray, np.ndarray]:
    """Fit (timed together with the threshold choice), predict the test visits (timed), measure."""
    t0, c0 = time.perf_counter(), time.process_time()
    if fit:
        model.fit(cohort, train, val)
    model.tune_threshold(cohort, val)
    fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    proba = np.asarray(model.predict_proba(cohort, test), dtype=float)
    pred_s, pred_cpu = time.perf_counter() - t0, time.process_time() - c0
    y = model.targets(test)
    res = evaluate_predictions(y, proba, model.predict(proba), ddi, patients=test.patient_id, single_visit=test.single_visit, n_boot=n_boot, seed=seed)
    res.update(
        threshold=float(model.threshold), chosen=dict(model.chosen), train_seconds=round(fit_s, 3), infer_seconds=round(pred_s, 4),
        visits_per_second=round(len(test) / pred_s, 1) if pred_s > 0 and len(test) else None, n_train=len(train), n_val=len(val),
        train_cpu_seconds=round(fit_cpu, 3), infer_cpu_seconds=round(pred_cpu, 4),
        visits_per_cpu_second=round(len(test) / pred_cpu, 1) if pred_cpu > 0 and len(test) else None,
    )
    if fit:
        res["peak_rss_mb"] = peak_rss_mb()
    return res, y, proba


def _evaluate_saved(name: str, workspace: Path, cohort: Cohort, vocab: list[str], ddi: np.ndarray, val: Samples, test: Samples, n_boot: int, seed: int) -> tuple[dict, np.ndarray, np.ndarray]:
    """A model trained on the saved split (``kgrec train``), loaded and measured like the others; its
    training time is the one its ``metrics.json`` recorded."""
    from kgrec.workspace import load_model

    kind = name.split("-", 1)[1]
    model = load_model(workspace, kind)
    cols = [model.drug_vocab.index(d) if d in model.drug_vocab else -1 for d in vocab]

    def proba(samples: Samples) -> np.ndarray:
        p = np.asarray(model.predict_proba(cohort, samples), dtype=float)
        out = np.zeros((len(samples), len(vocab)))
        for j, k in enumerate(cols):
            if k >= 0:
                out[:, j] = p[:, k]
        return out

    t0, c0 = time.perf_counter(), time.process_time()
    p_test = proba(test)
    infer_s, infer_cpu = time.perf_counter() - t0, time.process_time() - c0
    fixed = _Fixed(vocab, {id(val): proba(val), id(test): p_test})
    res, y, p = _evaluate(fixed, cohort, ddi, test, val, test, n_boot, seed, fit=False)
    metrics_file = Path(workspace) / kind / "metrics.json"
    trained = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
    res.update(
        train_seconds=trained.get("train_seconds"), infer_seconds=round(infer_s, 4),
        visits_per_second=round(len(test) / infer_s, 1) if infer_s > 0 and len(test) else None,
        train_cpu_seconds=None, infer_cpu_seconds=round(infer_cpu, 4),
        visits_per_cpu_second=round(len(test) / infer_cpu, 1) if infer_cpu > 0 and len(test) else None,
        saved={"path": str(Path(workspace) / kind), "threshold_saved": getattr(model, "threshold", None), "n_vocab_missing": int(sum(k < 0 for k in cols))},
    )
    res.pop("n_train", None)
    return res, y, p


def teacher_config(workspace: Path | str, options: dict | None = None):
    """The teacher settings the benchmark uses: the workspace's trained teacher's (``kgrec train --stage
    teacher``; the default when none was trained) with ``options`` (TeacherConfig fields) on top."""
    from dataclasses import fields, replace

    from kgrec.teacher.config import TeacherConfig, workspace_teacher_config

    cfg = workspace_teacher_config(workspace)
    if options:
        names = {f.name for f in fields(TeacherConfig)}
        bad = sorted(set(options) - names)
        if bad:
            raise OptionError(f"unknown teacher option(s) {', '.join(bad)}; TeacherConfig fields: {', '.join(sorted(names))}")
        cfg = replace(cfg, **options)
        cfg.validate()
    return cfg


def _teacher_folder(workspace: Path, cohort: Cohort, train: Samples, val: Samples, tcfg) -> Path:
    """The cache folder of the teacher trained on ``train`` with the settings ``tcfg``."""
    from kgrec.teacher.cache import features_key
    from kgrec.teacher.config import teacher_dir

    return teacher_dir(workspace) / features_key(cohort, train, val, tcfg, workspace)


def _evaluate_teacher(workspace: Path, cohort: Cohort, vocab: list[str], ddi: np.ndarray, train: Samples, val: Samples, test: Samples, n_boot: int, seed: int, tcfg) -> tuple[dict, np.ndarray, np.ndarray]:
    """The teacher row. A teacher for these training patients cached by an earlier run is loaded, not
    retrained; its train time is then the one recorded when it was trained (None for caches older than
    that record), never the loading time."""
    from kgrec.teacher import TeacherRecommender
    from kgrec.teacher.cache import no_state_cache

    meta_file = _teacher_folder(workspace, cohort, train, val, tcfg) / "features.json"
    cached = meta_file.exists()
    model = TeacherRecommender(vocab, tcfg, workspace=workspace)
    predict = model.predict_proba

    def predict_uncached(c: Cohort, samples: Samples) -> np.ndarray:
        # the frozen backbone's states (and the prompts' tokens) of every visit are kept in memory across
        # fits; the test visits are timed without them, as a new visit would be
        if samples is not test:
            return predict(c, samples)
        with no_state_cache():
            return predict(c, samples)

    model.predict_proba = predict_uncached
    res, y, proba = _evaluate(model, cohort, ddi, train, val, test, n_boot, seed)
    if cached:
        meta = json.loads(meta_file.read_text())
        res.update(train_seconds=meta.get("train_seconds"), train_cpu_seconds=meta.get("train_cpu_seconds"), teacher_cache=str(meta_file.parent))
    return res, y, proba


def _warm_teacher(workspace: Path, cohort: Cohort, train: Samples, val: Samples, tcfg) -> dict:
    """Make sure the teacher the student distils is trained (cached), outside the student's timing."""
    from kgrec.teacher import teacher_features

    t0, c0 = time.perf_counter(), time.process_time()
    teacher_features(workspace, cohort, train, val, tcfg)
    return {"teacher_seconds": round(time.perf_counter() - t0, 3), "teacher_cpu_seconds": round(time.process_time() - c0, 3)}


def _kgrec_model(name: str, vocab: list[str], workspace: Path, tcfg=None) -> Recommender:
    from kgrec.models import get_model

    if name == "student":  # distilled from the benchmark's teacher settings
        from kgrec.student.train import StudentRecommender, workspace_teacher

        return StudentRecommender(vocab, workspace=workspace, teacher=workspace_teacher(workspace, tcfg))
    cls = get_model(name)
    return cls(vocab, workspace=workspace) if cls.uses_workspace else cls(vocab)


def _run_external(
    cmd: list[str], names: list[str], split_dir: Path, cohort: Cohort, parts: dict[str, Samples], vocab: list[str], ddi: np.ndarray,
    config: dict, smiles, split_name: str, timeout: float | None, max_history: int | None = None,
) -> tuple[dict, dict]:
    """Write the request, run the runner, read every model's result. Returns (results, runner info)."""
    from kgrec.benchmark.exchange import read_result, write_request

    req = write_request(split_dir / "request.json", cohort, parts, vocab, ddi, names, config, smiles, split_name, max_history)
    out_dir = split_dir / "out"
    log = split_dir / "runner.log"
    t0 = time.perf_counter()
    failure = None
    try:
        with open(log, "w") as fh:
            # no progress bars in the log; a fixed string hash, so that PyHealth's vocabularies (and with them
            # the initial weights each code gets) are the same from run to run
            env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1", "PYTHONHASHSEED": str(config.get("seed", 0))}
            proc = subprocess.run([*cmd, str(req), str(out_dir)], stdout=fh, stderr=subprocess.STDOUT, timeout=timeout, check=False, env=env)
        if proc.returncode != 0:
            failure = f"the PyHealth runner exited with code {proc.returncode}: {_log_tail(log)}"
    except subprocess.TimeoutExpired:
        failure = f"the PyHealth runner ran past the {timeout:.0f} s limit (--pyhealth-timeout); log: {log}"
    except OSError as exc:
        failure = f"cannot start the PyHealth runner {cmd[0]}: {exc}"
    info: dict = {"seconds": round(time.perf_counter() - t0, 2), "log": str(log), "request": str(req)}
    rj = out_dir / "runner.json"
    if rj.exists():
        runner = json.loads(rj.read_text())
        info["versions"] = runner.get("versions")
        if runner.get("error"):
            failure = runner["error"]
            info["traceback"] = runner.get("traceback")
    if failure:
        info["failure"] = failure
    results = {n: read_result(out_dir, n, len(parts["val"]), len(parts["test"]), len(vocab), failure) for n in names}
    return results, info


def _log_tail(path: Path, n: int = 1200) -> str:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return ""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    tail = "\n".join(lines[-12:])
    return tail if len(tail) <= n else "..." + tail[-n:]


def _aggregate(folds: list[dict]) -> dict:
    from kgrec.evaluation import aggregate as agg

    out = agg([{**f, "fit_seconds": f["train_seconds"], "chosen": f.get("chosen", {})} for f in folds])
    vps = [f["visits_per_second"] for f in folds if f.get("visits_per_second")]
    out["visits_per_second"] = {"mean": float(np.mean(vps)), "folds": vps} if vps else None
    out["train_seconds"] = out.pop("fit_seconds")
    return out


def run_benchmark(
    workspace: Path | str,
    models: Sequence[str] = DEFAULT_MODELS,
    folds: int | None = None,
    out: Path | str | None = None,
    fold_models: Sequence[str] | None = None,
    seed: int = 42,
    n_boot: int = 1000,
    pyhealth: bool = True,
    pyhealth_python: str | Path | None = None,
    pyhealth_venv: Path | str | None = None,
    setup_pyhealth: bool = True,
    pyhealth_base_python: str | None = None,
    runner_cmd: Sequence[str] | None = None,
    data_dir: Path | str | None = None,
    epochs: int = 20,
    batch_size: int = 64,
    lr: float = 1e-3,
    patience: int | None = 5,
    device: str | None = None,
    pyhealth_timeout: float | None = None,
    pyhealth_history: int | None = None,
    teacher_options: dict | None = None,
    plots: bool = True,
    progress: Progress | None = None,
) -> BenchmarkResult:
    """Benchmark models on one workspace: the saved split (bootstrap 95% intervals) and, with
    ``folds`` > 1, K patient-level folds (paired per-fold differences against the best baseline: the
    model with the highest mean PRAUC among kgrec's two baselines and PyHealth's models).

    Args:
        models: kgrec registry names (``frequency``, ``logreg``, ``teacher``, ``student``) and PyHealth
            models (``GAMENet``, ``SafeDrug``, ``RETAIN``, ``MoleRec``); aliases ``baselines``, ``pyhealth``,
            ``kgrec``, ``all``.
        out: report folder (default ``<workspace>/reports/<dataset>``).
        fold_models: the models that also run on the folds (default: all of ``models``); e.g. leave the
            teacher out of the folds on a CPU.
        pyhealth: run the PyHealth models (False: their rows say they were not run).
        pyhealth_python: an interpreter that has PyHealth (default: the venv's, created when missing and
            ``setup_pyhealth``, from ``pyhealth_base_python`` or a Python 3.12/3.13 found on the machine).
        runner_cmd: the command that runs PyHealth models (default ``[python, pyhealth_runner.py]``); it
            gets ``REQUEST OUT`` appended. Tests use it for a stand-in runner.
        data_dir: open data (for SafeDrug/MoleRec's ATC3 SMILES; default ``$KGREC_DATA``).
        epochs, batch_size, lr, patience, device: PyHealth training settings (best epoch by validation
            PRAUC, PyHealth's Trainer).
        pyhealth_history: the PyHealth models see only this many most recent earlier visits (default:
            all; long histories such as Synthea's, up to hundreds of visits, cost time quadratically).
        teacher_options: TeacherConfig fields over the workspace's teacher settings, for the teacher row
            and the teacher the student distils (e.g. ``{"lora_r": 0, "fuse_codes": True}``).
    """
    from kgrec.workspace import load_cohort, reports_dir
    from kgrec.benchmark.exchange import load_smiles

    t_start = time.perf_counter()
    say = progress or (lambda m, d, t: None)
    workspace = Path(workspace)
    cohort = load_cohort(workspace)
    if not cohort.split:
        raise WorkspaceError("the cohort has no saved split: re-run `kgrec prepare`")
    vocab = cohort.vocab("drug")
    if not vocab:
        raise WorkspaceError("the cohort has no mapped drugs: nothing to recommend")
    ddi = ddi_matrix(cohort.ddi, vocab) if cohort.ddi is not None else np.zeros((len(vocab), len(vocab)), np.int8)
    chosen = resolve_models(models)
    tcfg = teacher_config(workspace, teacher_options) if any(n in ("teacher", "student") for n, _ in chosen) else None
    out = Path(out) if out else reports_dir(workspace) / cohort.source
    out.mkdir(parents=True, exist_ok=True)
    rows = {n: Row(n, fam) for n, fam in chosen}
    ph_names = [n for n, fam in chosen if fam == "pyhealth"]
    kg_names = [n for n, fam in chosen if fam != "pyhealth"]

    splits: list[tuple[str, dict]] = [("split", cohort.split)]
    if folds and folds > 1:
        splits += [(f"fold{k + 1}", sp) for k, sp in enumerate(kfold_patients(cohort.visits["patient_id"].unique(), folds, seed))]
    for n in SAVED_MODELS:
        if n in rows:
            rows[n].notes.append(f"loaded from {workspace / n.split('-', 1)[1]} (trained by `kgrec train` on the saved split); train s is the time its metrics.json recorded")
    if "student" in rows:
        rows["student"].notes.append("train s is the distillation alone: the teacher whose features it distils is trained first, once per training set (the teacher row's time; cached in WORKSPACE/teacher/<key>/)")
    if "teacher" in rows:
        rows["teacher"].notes.append("a teacher already cached for the same training patients and settings is loaded; its train s is then the time recorded when it was trained")
    on_folds = {n for n, _ in resolve_models(fold_models)} if fold_models is not None else {n for n, _ in chosen}
    on_folds -= set(SAVED_MODELS)
    for n, row in rows.items():
        if len(splits) > 1 and n not in on_folds:
            row.notes.append(f"run on the saved split only, not on the {folds} folds")
    total = len(splits) * len(chosen) + (1 if ph_names and pyhealth else 0)
    done = 0

    # ---- PyHealth's environment ----
    ph_env = None
    cmd: list[str] | None = None
    if ph_names and not pyhealth:
        for n in ph_names:
            rows[n].status, rows[n].reason = "skipped", "not run: --no-pyhealth"
    elif ph_names:
        if runner_cmd is not None:
            cmd = [str(c) for c in runner_cmd]
            ph_env = {"runner": cmd}
        else:
            from kgrec.benchmark.pyhealth_env import RUNNER, resolve_pyhealth

            say("PyHealth: checking its environment (first run: creating the venv)", done, total)
            env = resolve_pyhealth(pyhealth_python, pyhealth_venv, auto_setup=setup_pyhealth, base_python=pyhealth_base_python, progress=lambda m: say(f"PyHealth setup: {m}", done, total))
            ph_env = env.to_json()
            if env.ok:
                cmd = [str(env.python), str(RUNNER)]
            else:
                for n in ph_names:
                    rows[n].status, rows[n].reason = "error", f"PyHealth is not available: {env.reason}"
        done += 1
    smiles = load_smiles(data_dir or os.environ.get("KGREC_DATA")) if cmd and {"SafeDrug", "MoleRec"} & set(ph_names) else None
    ph_config = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "patience": patience, "seed": seed, "device": device, "max_history": pyhealth_history}
    if ph_names and cmd:
        for n in ph_names:
            if pyhealth_history is not None:
                rows[n].notes.append(f"sees the {pyhealth_history} most recent earlier visits (--pyhealth-history)")
            rows[n].notes.append(
                "uses no DDI information" if n == "RETAIN"
                else "DDI matrix: kgrec's ATC3 pairs (the matrix of the DDI-rate metric), not PyHealth's downloaded resource"
            )
        if {"SafeDrug", "MoleRec"} & set(ph_names):
            note = "ATC3 -> SMILES: kgrec open data mappings/atc3_smiles.tsv (the SafeDrug resource)" if smiles else "ATC3 -> SMILES: PyHealth's own ATC resource (no mappings/atc3_smiles.tsv found: set KGREC_DATA)"
            for n in ("SafeDrug", "MoleRec"):
                if n in rows:
                    rows[n].notes.append(note)

    curves: dict = {}
    runner_info: dict = {}
    for split_name, sp in splits:
        is_main = split_name == "split"
        boot = n_boot if is_main else 0
        parts = {p: build_samples(cohort, sp[p]) for p in ("train", "val", "test")}
        train, val, test = parts["train"], parts["val"], parts["test"]
        if len(train) == 0 or len(test) == 0:
            raise WorkspaceError(f"{split_name}: no training or no test visits ({len(train)} / {len(test)})")
        for name in kg_names:
            if not is_main and name not in on_folds:
                done += 1
                continue
            row = rows[name]
            say(f"{name}: {split_name}", done, total)
            try:
                if name in SAVED_MODELS:
                    res, y, proba = _evaluate_saved(name, workspace, cohort, vocab, ddi, val, test, boot, seed)
                elif name == "teacher":
                    res, y, proba = _evaluate_teacher(workspace, cohort, vocab, ddi, train, val, test, boot, seed, tcfg)
                else:
                    pre = _warm_teacher(workspace, cohort, train, val, tcfg) if name == "student" else {}
                    res, y, proba = _evaluate(_kgrec_model(name, vocab, workspace, tcfg), cohort, ddi, train, val, test, boot, seed)
                    res.update(pre)
            except Exception as exc:  # noqa: BLE001 - the reason goes into the report
                _fail(row, split_name, f"{type(exc).__name__}: {exc}", traceback.format_exc())
            else:
                _store(row, split_name, res)
                if is_main:
                    curves[name] = (y, proba)
            done += 1
        runnable = [n for n in ph_names if is_main or n in on_folds] if cmd else []
        if runnable:
            say(f"PyHealth ({', '.join(runnable)}): {split_name}", done, total)
            results, info = _run_external(cmd, runnable, out / "pyhealth" / split_name, cohort, parts, vocab, ddi, ph_config, smiles, split_name, pyhealth_timeout, pyhealth_history)
            runner_info[split_name] = info
            for n, r in results.items():
                row = rows[n]
                if r.status != "ok":
                    _fail(row, split_name, r.error or "unknown error", (r.info or {}).get("traceback") or info.get("traceback") or f"runner log: {info['log']}")
                    continue
                fixed = _Fixed(vocab, {id(val): r.val, id(test): r.test})
                res, y, proba = _evaluate(fixed, cohort, ddi, train, val, test, boot, seed, fit=False)
                res["train_seconds"] = r.info.get("train_seconds")
                inf = r.info.get("infer_seconds")
                res["infer_seconds"] = inf
                res["visits_per_second"] = round(len(test) / inf, 1) if inf else None
                res["peak_rss_mb"] = r.info.get("peak_rss_mb")  # the runner process's high-water mark
                cpu = r.info.get("infer_cpu_seconds")
                res["train_cpu_seconds"], res["infer_cpu_seconds"] = r.info.get("train_cpu_seconds"), cpu
                res["visits_per_cpu_second"] = round(len(test) / cpu, 1) if cpu else None
                res["runner"] = {k: v for k, v in r.info.items() if k not in ("status", "notes")}
                for note in r.info.get("notes", []):
                    if note not in row.notes:
                        row.notes.append(note)
                _store(row, split_name, res)
                if is_main:
                    curves[n] = (y, proba)
        done += len(ph_names)

    # ---- folds: aggregate and paired differences against the best baseline ----
    paired, reference = {}, None
    if len(splits) > 1:
        for row in rows.values():
            if row.folds and not row.fold_errors:
                row.summary = _aggregate(row.folds)
        # the reference: the strongest model that is not kgrec's own (its two baselines and PyHealth's models)
        base = [r for r in rows.values() if r.family in ("baseline", "pyhealth") and r.summary]
        if base:
            reference = max(base, key=lambda r: r.summary["metrics"]["prauc"]["mean"]).name
            ref = rows[reference]
            for row in rows.values():
                if row.name == reference or not row.summary:
                    continue
                paired[row.name] = {}
                for m in PAIRED_METRICS:
                    d = np.array([f["metrics"][m] for f in row.folds]) - np.array([f["metrics"][m] for f in ref.folds])
                    paired[row.name][m] = {
                        "mean": float(d.mean()), "std": float(d.std(ddof=1)) if len(d) > 1 else 0.0,
                        "folds": d.tolist(), "n_better": int((d > 0).sum()),
                    }

    test_main = build_samples(cohort, cohort.split["test"])
    stats = cohort.stats()
    cstats = {k: stats[k] for k in ("n_patients", "n_visits", "n_eval_visits", "n_drugs", "n_ddi_pairs", "split")}
    cstats.update(n_test_visits=len(test_main), n_test_single_visit=int(test_main.single_visit.sum()), n_test_multi_visit=int((~test_main.single_visit).sum()))
    config = {"models": [n for n, _ in chosen], "teacher": tcfg.to_json() if tcfg is not None else None, "folds": folds, "fold_models": sorted(on_folds) if len(splits) > 1 else [], "seed": seed, "n_boot": n_boot, "pyhealth": pyhealth, "pyhealth_training": ph_config}
    if runner_info:
        ph_env = {**(ph_env or {}), "runs": runner_info}
    res = BenchmarkResult(cohort.source, str(workspace), out, rows, folds if len(splits) > 1 else None, config, cstats, paired, reference, ph_env, time.perf_counter() - t_start, curves=curves)
    say("writing the report", total, total)
    from kgrec.benchmark.report import write_report

    write_report(res, plots=plots)
    return res


def _store(row: Row, split_name: str, res: dict) -> None:
    if split_name == "split":
        row.split = res
    else:
        row.folds.append({"fold": split_name, **res})


def _fail(row: Row, split_name: str, reason: str, detail: str | None) -> None:
    if split_name == "split":
        row.status, row.reason, row.detail = "error", reason, detail
    else:
        row.fold_errors.append(f"{split_name}: {reason}")
        if row.status == "ok" and not row.split:
            row.status, row.reason = "error", reason
