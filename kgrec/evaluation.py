"""Evaluation protocol: the saved split, or patient-level K-fold CV with per-fold validation parts.

Single split: fit on train, choose hyper-parameters and the threshold on val, report test metrics with
patient-bootstrap 95% intervals. K folds: the same inside every fold, then mean ± std over folds and,
across models, paired per-fold differences against a reference model.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kgrec.cohort.base import Cohort
from kgrec.cohort.ddi import ddi_matrix
from kgrec.cohort.samples import Samples, build_samples
from kgrec.cohort.split import kfold_patients
from kgrec.errors import WorkspaceError
from kgrec.metrics import METRICS, evaluate_predictions
from kgrec.models import get_model
from kgrec.models.base import Recommender

ModelFactory = Callable[[list[str]], Recommender]


@dataclass
class ModelEvaluation:
    """One model's result: a single-split dict, or per-fold dicts plus their aggregate."""

    model: str
    folds: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    def metric_folds(self, metric: str) -> list[float]:
        return [f["metrics"].get(metric, float("nan")) for f in self.folds]


@dataclass
class EvaluationResult:
    dataset: str
    n_folds: int | None
    models: dict[str, ModelEvaluation]
    paired: dict = field(default_factory=dict)
    reference: str | None = None

    def to_json(self) -> dict:
        """Each metric a number (single split) or ``{"mean", "std", "folds"}`` (K folds)."""
        out: dict = {"dataset": self.dataset, "folds": self.n_folds, "models": {}}
        for name, ev in self.models.items():
            out["models"][name] = ev.summary
        if self.paired:
            out["paired_differences"] = {"reference": self.reference, **self.paired}
        return out

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        tag = f"cv{self.n_folds}" if self.n_folds else "split"
        path = folder / f"evaluation-{tag}-{'-'.join(self.models)}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2))
        tmp.replace(path)
        (folder / f"evaluation-{tag}-{'-'.join(self.models)}.md").write_text(self.markdown())
        return path

    def markdown(self) -> str:
        cols = list(METRICS)
        lines = [f"| model | {' | '.join(cols)} |", "|---|" + "---|" * len(cols)]
        for name, ev in self.models.items():
            cells = format_cells(ev.summary)
            lines.append(f"| {name} | {' | '.join(cells)} |")
        if self.paired:
            lines += ["", f"Paired per-fold differences against `{self.reference}` (model − reference):", ""]
            lines += ["| model | metric | mean ± std | folds better |", "|---|---|---|---|"]
            for name, per in self.paired.items():
                for m, d in per.items():
                    lines.append(f"| {name} | {m} | {d['mean']:+.4f} ± {d['std']:.4f} | {d['n_better']}/{len(d['folds'])} |")
        return "\n".join(lines) + "\n"


def format_cells(summary: dict, sep: str = " ") -> list[str]:
    """Table cells for :data:`METRICS`: ``mean ± std`` (folds) or ``value [lo, hi]`` (single split)."""
    cells = []
    for m in METRICS:
        v = summary["metrics"].get(m)
        if isinstance(v, dict):
            cells.append(f"{v['mean']:.4f} ± {v['std']:.4f}")
        elif v is None:
            cells.append("–")
        else:
            ci = summary.get("intervals", {}).get(m)
            cells.append(f"{v:.4f}" + (f"{sep}[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""))
    return cells


def fit_model(factory: ModelFactory, vocab: list[str], cohort: Cohort, train: Samples, val: Samples) -> tuple[Recommender, float]:
    """A fitted model with its threshold tuned on ``val``, and the seconds both took."""
    model = factory(vocab)
    t0 = time.perf_counter()
    model.fit(cohort, train, val)
    model.tune_threshold(cohort, val)
    return model, round(time.perf_counter() - t0, 3)


def score_model(model: Recommender, cohort: Cohort, test: Samples, ddi: np.ndarray | None, n_boot: int, seed: int) -> dict:
    """:func:`~kgrec.metrics.evaluate_predictions` of a fitted model on ``test``, with ``predict_seconds``."""
    t0 = time.perf_counter()
    proba = model.predict_proba(cohort, test)
    pred_s = time.perf_counter() - t0
    res = evaluate_predictions(
        model.targets(test), proba, model.predict(proba), ddi, patients=test.patient_id,
        single_visit=test.single_visit, n_boot=n_boot, seed=seed,
    )
    res["predict_seconds"] = round(pred_s, 4)
    return res


def _run_one(factory: ModelFactory, cohort: Cohort, vocab: list[str], ddi: np.ndarray, train: Samples, val: Samples, test: Samples, n_boot: int, seed: int) -> dict:
    model, fit_s = fit_model(factory, vocab, cohort, train, val)
    res = score_model(model, cohort, test, ddi, n_boot, seed)
    res.update(chosen=dict(model.chosen), fit_seconds=fit_s, n_train=len(train), n_val=len(val))
    return res


def aggregate(folds: list[dict]) -> dict:
    """Mean ± std (and per-fold values) of every metric over folds, overall and per patient group."""
    def agg(key_fn):
        vals = [key_fn(f) for f in folds]
        vals = [v for v in vals if v is not None]
        if not vals:
            return None
        return {"mean": float(np.mean(vals)), "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0, "folds": vals}

    out = {"metrics": {}, "groups": {}}
    for m in METRICS:
        a = agg(lambda f: f["metrics"].get(m))
        if a:
            out["metrics"][m] = a
    for g in ("single_visit", "multi_visit"):
        out["groups"][g] = {
            "n_visits": int(sum(f["groups"][g]["n_visits"] for f in folds)),
            "metrics": {m: a for m in METRICS if (a := agg(lambda f: f["groups"][g]["metrics"].get(m)))},
        }
    out["fit_seconds"] = agg(lambda f: f["fit_seconds"])
    out["chosen"] = [f["chosen"] for f in folds]
    out["n_test_visits"] = [f["n_visits"] for f in folds]
    return out


def evaluate_models(
    cohort: Cohort,
    models: Sequence[str | tuple[str, ModelFactory]] = ("frequency", "logreg"),
    folds: int | None = None,
    seed: int = 42,
    n_boot: int = 1000,
    reference: str | None = None,
    progress: Callable[[str], None] | None = None,
    workspace: Path | str | None = None,
) -> EvaluationResult:
    """Evaluate models on the saved split (``folds=None``) or by patient-level K-fold CV.

    Args:
        models: names from :data:`kgrec.models.MODELS`, or ``(name, factory)`` pairs where ``factory(vocab)``
            returns a :class:`Recommender` (how later stages plug in).
        reference: model the paired per-fold differences are taken against (default: ``logreg`` if
            evaluated, else the first model).
        workspace: passed to models that read it (``Recommender.uses_workspace``: teacher, student).
    """
    vocab = cohort.vocab("drug")
    if not vocab:
        raise WorkspaceError("the cohort has no mapped drugs: nothing to recommend")
    ddi = ddi_matrix(cohort.ddi, vocab) if cohort.ddi is not None else np.zeros((len(vocab), len(vocab)), np.int8)
    factories: dict[str, ModelFactory] = {}
    for m in models:
        if isinstance(m, tuple):
            factories[m[0]] = m[1]
        else:
            cls = get_model(m)
            factories[m] = (lambda v, cls=cls: cls(v, workspace=workspace)) if cls.uses_workspace else cls
    if folds:
        splits = list(kfold_patients(cohort.visits["patient_id"].unique(), folds, seed))
    else:
        if not cohort.split:
            raise WorkspaceError("the cohort has no saved split: re-run `kgrec prepare`")
        splits = [cohort.split]
    results = {name: ModelEvaluation(name) for name in factories}
    for k, sp in enumerate(splits):
        train, val, test = (build_samples(cohort, sp[part]) for part in ("train", "val", "test"))
        for name, factory in factories.items():
            if progress:
                progress(f"{name}: fold {k + 1}/{len(splits)}" if folds else f"{name}: split")
            results[name].folds.append(_run_one(factory, cohort, vocab, ddi, train, val, test, n_boot if not folds else 0, seed))
    for ev in results.values():
        ev.summary = aggregate(ev.folds) if folds else ev.folds[0]
    res = EvaluationResult(cohort.source, folds, results)
    if folds and len(results) > 1:
        ref = reference or ("logreg" if "logreg" in results else next(iter(results)))
        res.reference = ref
        for name, ev in results.items():
            if name == ref:
                continue
            res.paired[name] = {}
            for m in ("jaccard", "f1", "prauc"):
                res.paired[name][m] = paired_difference(ev.metric_folds(m), results[ref].metric_folds(m))
    return res


def paired_difference(a, b) -> dict:
    """Per-fold ``a - b`` on the same folds: mean, std (ddof 1), the folds, and how many are above 0."""
    d = np.asarray(a, float) - np.asarray(b, float)
    return {"mean": float(d.mean()), "std": float(d.std(ddof=1)) if len(d) > 1 else 0.0, "folds": d.tolist(), "n_better": int((d > 0).sum())}


def fit_on_split(model: Recommender, cohort: Cohort, n_boot: int = 200) -> dict:
    """Fit on the saved split's train part, tune the threshold on val, measure val and test once.

    Returns ``{"val": ..., "test": ..., "fit_seconds"}``; each part as :func:`evaluate_predictions`
    gives it plus ``visits_per_second`` of prediction.
    """
    if not cohort.split:
        raise WorkspaceError("the cohort has no saved split: re-run `kgrec prepare`")
    vocab = model.drug_vocab
    train, val, test = (build_samples(cohort, cohort.split[p]) for p in ("train", "val", "test"))
    t0 = time.perf_counter()
    model.fit(cohort, train, val)
    model.tune_threshold(cohort, val)
    out: dict = {"fit_seconds": round(time.perf_counter() - t0, 2)}
    ddi = ddi_matrix(cohort.ddi, vocab) if cohort.ddi is not None else None
    for name, s in (("val", val), ("test", test)):
        if len(s) == 0:
            out[name] = {"n_visits": 0, "metrics": {}}
            continue
        t1 = time.perf_counter()
        proba = model.predict_proba(cohort, s)
        dt = time.perf_counter() - t1
        res = evaluate_predictions(model.targets(s), proba, model.predict(proba), ddi, patients=s.patient_id, single_visit=s.single_visit, n_boot=n_boot if name == "test" else 0)
        res["visits_per_second"] = round(len(s) / dt, 2) if dt > 0 else None
        out[name] = res
    return out
