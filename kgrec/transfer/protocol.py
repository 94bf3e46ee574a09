"""The cross-cohort protocol: in-domain, zero-shot, few-shot and pooled training on one target site.

The target's patients are cut into the same K folds as ``kgrec evaluate --folds K`` (same seed, same
patient ids), so every transfer result pairs fold by fold with the in-domain one:

- **in-domain**: train on the fold's training patients of the target only (``kgrec evaluate --folds``).
- **zero-shot**: train on the sources only (their patients split 9:1, the tenth choosing ``C``,
  thresholds and early stopping), once; score every fold's test patients of the target. No target label
  is used. The output space is the **shared vocabulary** (``zero_shot_vocab="shared"``, the default): the
  target's ATC3 classes that some source prescribes. A class no source ever prescribes cannot be learnt
  from the sources, so scoring it measures the formulary gap, not the model; target visits left with no
  drug of the shared vocabulary are not evaluable there. The in-domain reference is the same in-domain
  fit scored on the same columns and visits (:class:`SharedView`), so zero-shot pairs exactly with it.
  ``zero_shot_vocab="target"`` scores the whole target vocabulary instead.
- **few-shot**: the sources plus a seeded share (10%, 25%, 50%, 100%) of the fold's target training
  patients; choices on the fold's target validation patients.
- **pooled**: the sources plus all of the fold's target training patients (few-shot at 100%).

Each mode's result has the shape of ``kgrec evaluate --json``; paired per-fold differences are taken
against in-domain logistic regression and against the same model in-domain.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kgrec.cohort.ddi import ddi_matrix
from kgrec.cohort.samples import Samples, build_samples
from kgrec.cohort.split import kfold_patients, split_patients
from kgrec.errors import OptionError, WorkspaceError
from kgrec.evaluation import EvaluationResult, ModelEvaluation, aggregate, fit_model, paired_difference, score_model
from kgrec.models import Recommender, get_model
from kgrec.models.memo import remember
from kgrec.transfer.pool import Site, load_site, pool, prefixed

MODES = ("zero-shot", "few-shot", "pooled")
SHARES = (0.1, 0.25, 0.5, 1.0)
DEFAULT_MODELS = ("frequency", "logreg", "logreg-graph", "site-ensemble-names")
PAIRED_METRICS = ("jaccard", "f1", "prauc")
VOCABS = ("shared", "target")


class SharedView(Recommender):
    """A fitted model seen through a sub-vocabulary: its probabilities for ``vocab``'s drugs only (its own
    threshold, tuned again on validation over those drugs). The in-domain reference of zero-shot."""

    def __init__(self, model: Recommender, vocab: list[str]):
        super().__init__(list(vocab))
        pos = {d: i for i, d in enumerate(model.drug_vocab)}
        self.inner, self.cols = model, np.array([pos[d] for d in vocab], dtype=np.int64)
        self.chosen = dict(model.chosen)

    def fit(self, cohort, train, val):  # pragma: no cover - a view of a fitted model
        raise TypeError("SharedView wraps a fitted model")

    def predict_proba(self, cohort, samples):
        return self.inner.predict_proba(cohort, samples)[:, self.cols]


@dataclass
class TransferResult:
    """In-domain and transfer results on one target, each an :class:`EvaluationResult`-shaped dict."""

    target: str
    sources: list[str]
    folds: int
    modes: dict[str, dict] = field(default_factory=dict)
    pooling: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"target": self.target, "sources": self.sources, "folds": self.folds, "pooling": self.pooling,
                "seconds": self.seconds, "modes": self.modes}


def _factory(name: str, workspace: Path):
    """``vocab -> Recommender`` for a kgrec registry name or a PyHealth model (``GAMENet``, ...)."""
    from kgrec.transfer.external import PyHealthRecommender, pyhealth_name

    if (ph := pyhealth_name(name)) is not None:
        return lambda v: PyHealthRecommender(v, ph, workspace)
    cls = get_model(name)
    return (lambda v: cls(v, workspace=workspace)) if cls.uses_workspace else cls


class TransferRun:
    """One target, its sources and its folds; :meth:`run_mode` evaluates one mode for every model."""

    def __init__(self, target: Site, sources: Sequence[Site], models: Sequence[str], folds: int = 5, seed: int = 42,
                 shares: Sequence[float] = SHARES, progress: Callable[[str], None] | None = None, zero_shot_vocab: str = "shared"):
        if not sources:
            raise WorkspaceError("transfer needs at least one source workspace (--source-ws)")
        if zero_shot_vocab not in VOCABS:
            raise OptionError(f"zero-shot vocabulary must be one of {', '.join(VOCABS)}, got {zero_shot_vocab!r}")
        if folds < 2:
            raise OptionError(f"--folds must be at least 2, got {folds}")
        bad = [s for s in shares if not 0 < s <= 1]
        if bad:
            raise OptionError(f"few-shot shares must lie in (0, 1], got {bad}")
        self.cohort, self.report = pool(target, sources)
        self.site_of = self.report["sites"]
        self.target_name = next(iter(self.site_of))
        self.source_names = list(self.site_of)[1:]
        self.target, self.sources = target, sources
        self.models, self.k, self.seed, self.shares = list(models), folds, seed, tuple(shares)
        self.progress = progress or (lambda s: None)
        from kgrec.benchmark import PYHEALTH_MODELS
        from kgrec.models import MODELS
        from kgrec.transfer.external import check_ready, pyhealth_name

        names = []
        for m in self.models:  # unknown names, and PyHealth without its venv, fail before any training
            if (ph := pyhealth_name(m)) is None:
                try:
                    get_model(m)
                except ValueError:
                    raise OptionError(f"unknown model {m!r}; choose from {', '.join(sorted(MODELS))} or PyHealth's {', '.join(PYHEALTH_MODELS)}") from None
            names.append(ph or m)
        self.models = list(dict.fromkeys(names))
        check_ready(self.models)
        self.vocab = target.cohort.vocab("drug")
        ddi = target.cohort.ddi
        self.ddi = ddi_matrix(ddi, self.vocab) if ddi is not None else np.zeros((len(self.vocab),) * 2, np.int8)
        prescribed = {d for s in sources for d in s.cohort.vocab("drug")}
        self.zs_vocab = [d for d in self.vocab if d in prescribed] if zero_shot_vocab == "shared" else list(self.vocab)
        cols = [self.vocab.index(d) for d in self.zs_vocab]
        self.zs_ddi = self.ddi[np.ix_(cols, cols)]
        self.vocabulary = {"zero_shot": zero_shot_vocab, "n_target_drugs": len(self.vocab), "n_zero_shot_drugs": len(self.zs_vocab),
                           "never_prescribed_by_a_source": [d for d in self.vocab if d not in set(self.zs_vocab)]}
        self.in_domain_shared: EvaluationResult | None = None
        tp = [p for p in target.patients]
        self.folds = [{part: prefixed(self.target_name, ids) for part, ids in f.items()} for f in kfold_patients(tp, folds, seed)]
        visits = self.cohort.visits
        self.source_patients = sorted(set(visits.loc[visits["site"] != self.target_name, "patient_id"]))
        sp = split_patients(self.source_patients, (0.9, 0.1, 0.0), seed)
        self.source_train, self.source_val = sp["train"] + sp["test"], sp["val"]

    def _samples(self, patients) -> Samples:
        return build_samples(self.cohort, patients)

    def _zs_test(self, patients) -> Samples:
        """The visits of ``patients`` with at least one drug of the zero-shot vocabulary."""
        s = self._samples(patients)
        keep = set(self.zs_vocab)
        return s.subset([i for i, ds in enumerate(s.targets) if keep.intersection(ds)])

    def _result(self, per_model: dict[str, list[dict]]) -> EvaluationResult:
        models = {}
        for name, folds in per_model.items():
            ev = ModelEvaluation(name, folds)
            ev.summary = aggregate(folds)
            models[name] = ev
        return EvaluationResult(self.cohort.source, self.k, models)

    def in_domain(self, reuse: EvaluationResult | None = None, skip: Sequence[str] = ()) -> EvaluationResult:
        """``kgrec evaluate --folds K`` on the target alone, on the same folds. ``reuse``: an evaluation of
        the target on these folds (``kgrec run``'s own), whose models are taken as they are, not fitted
        again; ``skip``: models with no in-domain row (``student-pooled``: pooled by definition). Neither
        applies with a zero-shot vocabulary view (its shared view needs the fitted models)."""
        view = self.zs_vocab != self.vocab
        taken = {m: reuse.models[m].folds for m in self.models if not view and reuse is not None and m in reuse.models
                 and len(reuse.models[m].folds) == self.k}
        todo = [m for m in self.models if m not in taken and (view or m not in skip)]
        per: dict[str, list[dict]] = {m: [] for m in todo}
        shared: dict[str, list[dict]] = {m: [] for m in todo}
        for i, f in enumerate(self.folds):
            tr, va, te = (self._samples(f[p]) for p in ("train", "val", "test"))
            for m in todo:
                self.progress(f"in-domain {m}: fold {i + 1}/{self.k}")
                model, fit_s = fit_model(_factory(m, self.target.workspace), self.vocab, self.cohort, tr, va)
                remember(m, model, self.cohort, tr, va)
                per[m].append({**score_model(model, self.cohort, te, self.ddi, 0, self.seed), "fit_seconds": fit_s, "chosen": dict(model.chosen), "n_train": len(tr), "n_val": len(va)})
                if view:
                    sv = SharedView(model, self.zs_vocab)
                    sv.tune_threshold(self.cohort, va)
                    shared[m].append({**score_model(sv, self.cohort, self._zs_test(f["test"]), self.zs_ddi, 0, self.seed), "fit_seconds": fit_s, "chosen": dict(sv.chosen)})
        res = self._result({**taken, **per})
        self.in_domain_shared = self._result(shared) if view else res
        return res

    def zero_shot(self) -> EvaluationResult:
        tr, va = self._samples(self.source_train), self._samples(self.source_val)
        per: dict[str, list[dict]] = {m: [] for m in self.models}
        overall = {}
        all_target = self._zs_test([p for f in self.folds for p in f["test"]])
        for m in self.models:
            self.progress(f"zero-shot {m}: training on {', '.join(self.source_names)}")
            model, fit_s = fit_model(_factory(m, self.target.workspace), self.zs_vocab, self.cohort, tr, va)
            for f in self.folds:
                per[m].append({**score_model(model, self.cohort, self._zs_test(f["test"]), self.zs_ddi, 0, self.seed), "fit_seconds": fit_s,
                               "chosen": dict(model.chosen), "n_train": len(tr), "n_val": len(va)})
            overall[m] = score_model(model, self.cohort, all_target, self.zs_ddi, 1000, self.seed)
        res = self._result(per)
        for m, ev in res.models.items():
            ev.summary["all_target_visits"] = overall[m]
        return res

    def with_target_share(self, share: float) -> EvaluationResult:
        per: dict[str, list[dict]] = {m: [] for m in self.models}
        for i, f in enumerate(self.folds):
            rng = np.random.default_rng(self.seed + 7 * i + int(share * 1000))
            train_t = sorted(f["train"])
            n = max(1, int(round(share * len(train_t))))
            picked = sorted(rng.choice(train_t, size=n, replace=False).tolist()) if share < 1 else train_t
            tr, va, te = self._samples(self.source_patients + picked), self._samples(f["val"]), self._samples(f["test"])
            for m in self.models:
                self.progress(f"{'pooled' if share == 1 else f'few-shot {share:.0%}'} {m}: fold {i + 1}/{self.k}")
                model, fit_s = fit_model(_factory(m, self.target.workspace), self.vocab, self.cohort, tr, va)
                remember(m, model, self.cohort, tr, va)
                per[m].append({**score_model(model, self.cohort, te, self.ddi, 0, self.seed), "fit_seconds": fit_s, "chosen": dict(model.chosen),
                               "n_train": len(tr), "n_val": len(va), "n_target_train_patients": n})
        return self._result(per)


def _with_pairs(res: EvaluationResult, indomain: EvaluationResult, suffix: str = "") -> dict:
    """``res.to_json()`` with paired per-fold differences against in-domain logreg and the same model in-domain."""
    out = res.to_json()
    ref = "logreg" if "logreg" in indomain.models else next(iter(indomain.models))
    out["paired_differences"] = {"reference": f"in-domain {ref}"}
    out["paired_vs_in_domain_same_model"] = {}
    for name, ev in res.models.items():
        out["paired_differences"][name] = {m: paired_difference(ev.metric_folds(m), indomain.models[ref].metric_folds(m)) for m in PAIRED_METRICS}
        if name in indomain.models:
            out["paired_vs_in_domain_same_model"][name] = {m: paired_difference(ev.metric_folds(m), indomain.models[name].metric_folds(m)) for m in PAIRED_METRICS}
    if suffix:
        out["models"] = {f"{k}{suffix}": v for k, v in out["models"].items()}
        for key in ("paired_differences", "paired_vs_in_domain_same_model"):
            out[key] = {(k if k == "reference" else f"{k}{suffix}"): v for k, v in out[key].items()}
    return out


def run_transfer(target_ws: Path | str, source_ws: Sequence[Path | str], modes: Sequence[str] = MODES, models: Sequence[str] = DEFAULT_MODELS,
                 folds: int = 5, seed: int = 42, shares: Sequence[float] = SHARES, progress: Callable[[str], None] | None = None,
                 zero_shot_vocab: str = "shared", in_domain: EvaluationResult | None = None) -> TransferResult:
    """Run the cross-cohort protocol (module docstring) and return every mode's result. ``in_domain``: the
    target's own K-fold evaluation on the same folds (``kgrec run``), reused for the models it holds."""
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise OptionError(f"unknown transfer mode(s) {unknown}; choose from {', '.join(MODES)}")
    t0 = time.perf_counter()
    run = TransferRun(load_site(target_ws), [load_site(s) for s in source_ws], models, folds, seed, shares, progress, zero_shot_vocab)
    out = TransferResult(run.target_name, run.source_names, folds, pooling={**run.report, "zero_shot_vocabulary": run.vocabulary})
    indomain = run.in_domain(in_domain, skip=("student-pooled",)) if "zero-shot" not in modes else run.in_domain()
    out.modes["in-domain"] = indomain.to_json()
    out.seconds["in-domain"] = round(time.perf_counter() - t0, 2)
    by_share: dict[float, EvaluationResult] = {}  # pooled is few-shot at 100%: trained once when both are asked

    def share(x: float) -> EvaluationResult:
        if x not in by_share:
            by_share[x] = run.with_target_share(x)
        return by_share[x]

    for mode in sorted(dict.fromkeys(modes), key=MODES.index):
        t1 = time.perf_counter()
        if mode == "zero-shot":
            ref = run.in_domain_shared
            out.modes[mode] = {**_with_pairs(run.zero_shot(), ref), "vocabulary": run.vocabulary,
                               "in_domain_same_vocabulary": {n: ev.summary for n, ev in ref.models.items()}}
        elif mode == "pooled":
            out.modes[mode] = _with_pairs(share(1.0), indomain)
        else:
            merged: dict = {"dataset": run.cohort.source, "folds": folds, "shares": list(shares), "models": {},
                            "paired_differences": {"reference": None}, "paired_vs_in_domain_same_model": {}}
            for x in shares:
                part = _with_pairs(share(x), indomain, suffix=f"@{x:.0%}")
                merged["models"].update(part["models"])
                merged["paired_differences"].update(part["paired_differences"])
                merged["paired_vs_in_domain_same_model"].update(part["paired_vs_in_domain_same_model"])
            out.modes[mode] = merged
        out.seconds[mode] = round(time.perf_counter() - t1, 2)
    out.seconds["total"] = round(time.perf_counter() - t0, 2)
    return out
