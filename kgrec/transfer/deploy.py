"""The deployed student after pooling: ``kgrec train --stage distill --pool SITE`` (and ``kgrec run --pool``).

:class:`~kgrec.transfer.distill.PooledStudent` is fitted once on the saved split: the target's training
patients plus every patient of the pooled sites, validation (epoch, threshold) on the target's validation
patients, scored once on the target's test patients. Its student part is what ``recommend``, ``explain``,
``serve`` and the web page load from ``<workspace>/student/``, written beside the old one and swapped in
(:func:`kgrec.fsatomic.replace_dir`): a failure leaves the previous student in place.

``provenance.json`` says what it is: the model (``student-pooled``), its teacher, every site with its
workspace and cohort key, the graph key, the split, the kgrec version, and (after ``kgrec run --pool``)
the K-fold figures of the same model. :func:`kgrec.workspace.check_deployed` refuses a student whose
cohort, graph or vocabulary no longer match the workspace, naming the command that rebuilds it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kgrec.cohort.samples import build_samples
from kgrec.errors import WorkspaceError
from kgrec.transfer.distill import DEFAULT_TEACHER, PooledStudent, check_teacher
from kgrec.transfer.pool import load_site, pool, prefixed
from kgrec.workspace import cohort_key, graph_key


@dataclass
class DeployResult:
    path: Path
    val: dict
    test: dict
    teacher_test: dict
    provenance: dict
    fit_seconds: float

    def to_json(self) -> dict:
        return {"stage": "distill", "deployed": "student-pooled", "path": str(self.path), "validation": self.val, "test": self.test,
                "teacher_test": self.teacher_test, "provenance": self.provenance, "train_seconds": self.fit_seconds}


def prepared_sites(workspace: Path | str, pool: Sequence[str]) -> list[str]:
    """The pooled sites' workspaces: a workspace folder as it is, or a source name already prepared into
    ``<workspace>/pool/<name>``; anything else is a :class:`WorkspaceError` naming the command that makes it."""
    sites = []
    for item in pool:
        path = Path(item) if (Path(item) / "cohort").is_dir() else Path(workspace) / "pool" / str(item)
        if not (path / "cohort").is_dir():
            raise WorkspaceError(f"--pool {item!r}: neither a workspace (no {Path(item) / 'cohort'}) nor a site prepared in {path} "
                                 f"(run `kgrec prepare -s {item} -w {path}`, or `kgrec run --pool {item}`)")
        sites.append(str(path))
    return sites


def site_keys(pool_ws: Sequence[Path | str]) -> dict:
    """``{workspace: cohort key}`` of the pooled sites (part of the distill stage's settings, so a re-prepared
    site retrains the deployed student)."""
    return {str(p): cohort_key(p) for p in pool_ws}


def train_pooled_on_split(workspace: Path | str, pool_ws: Sequence[Path | str], teacher: str = DEFAULT_TEACHER, config: dict | None = None,
                          seed: int = 42, progress: bool = False) -> DeployResult:
    """Fit, score and deploy the pooled student (module docstring)."""
    from kgrec import __version__
    from kgrec.cohort.ddi import ddi_matrix
    from kgrec.evaluation import score_model
    from kgrec.fsatomic import replace_dir, temp_dir
    from kgrec.student.stage import student_dir

    check_teacher(teacher)
    if not pool_ws:
        raise WorkspaceError("the pooled student needs at least one other site (--pool)")
    target = load_site(workspace)
    if not target.cohort.split:
        raise WorkspaceError(f"workspace {workspace}: its cohort has no saved split; re-run `kgrec prepare -w {workspace}`")
    sites = [load_site(p) for p in pool_ws]
    cohort, report = pool(target, sites)
    tname = report["target"]
    vis = cohort.visits
    sources = sorted(set(vis.loc[vis["site"] != tname, "patient_id"]))
    split = target.cohort.split
    tr = build_samples(cohort, prefixed(tname, split["train"]) + sources)
    va, te = (build_samples(cohort, prefixed(tname, split[p])) for p in ("val", "test"))
    vocab = target.cohort.vocab("drug")
    t0 = time.perf_counter()
    model = PooledStudent(vocab, workspace, teacher, config, progress=progress).fit(cohort, tr, va)
    model.tune_threshold(cohort, va)
    fit_s = round(time.perf_counter() - t0, 2)
    ddi = ddi_matrix(cohort.ddi, vocab) if cohort.ddi is not None else None
    val = score_model(model, cohort, va, ddi, 0, seed)
    test = score_model(model, cohort, te, ddi, 200, seed)
    model.teacher_model.tune_threshold(cohort, va)
    teacher_test = score_model(model.teacher_model, cohort, te, ddi, 200, seed)
    student = model.student
    student.threshold = model.threshold
    provenance = {
        "model": "student-pooled", "teacher": teacher, "kgrec_version": __version__, "target": tname,
        "sites": {name: {"workspace": info["workspace"], "source": info["source"], "cohort_key": cohort_key(info["workspace"]),
                         "n_patients": info["n_patients"], "n_visits": info["n_visits"]} for name, info in report["sites"].items()},
        "graph_key": graph_key(workspace), "drug_vocab": vocab,
        "trained_on": {"split": "the target's saved split (train + every pooled patient; val chooses epoch and threshold)", "seed": split.get("seed"),
                       "n_train_visits": len(tr), "n_val_visits": len(va), "n_test_visits": len(te)},
        "student_config": model.chosen["student_config"], "in_domain_student_config": _in_domain_config(workspace),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    folder = student_dir(workspace)
    tmp = temp_dir(folder)
    try:
        student.save(tmp)
        res = DeployResult(folder, val, test, teacher_test, provenance, fit_s)
        (tmp / "provenance.json").write_text(json.dumps(provenance, indent=1))
        (tmp / "metrics.json").write_text(json.dumps({**res.to_json(), "chosen": model.chosen}, indent=1, default=str))
        replace_dir(tmp, folder)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return res


def _in_domain_config(workspace: Path | str) -> dict | None:
    """The in-domain student's settings kept through the swap (``kgrec evaluate -m student`` keeps using them)."""
    meta = Path(workspace) / "student" / "student.json"
    if not meta.exists():
        return None
    d = json.loads(meta.read_text())
    prov = Path(workspace) / "student" / "provenance.json"
    if prov.exists() and json.loads(prov.read_text()).get("model") == "student-pooled":
        return json.loads(prov.read_text()).get("in_domain_student_config")
    return d.get("config")


def record_cv(workspace: Path | str, figures: dict) -> None:
    """Add the K-fold figures of ``student-pooled`` (from ``kgrec run --pool``) to the deployed provenance."""
    from kgrec.fsatomic import replace_file, temp_path

    path = Path(workspace) / "student" / "provenance.json"
    if not path.exists():
        return
    prov = json.loads(path.read_text())
    prov["cross_validation"] = figures
    tmp = temp_path(path)
    tmp.write_text(json.dumps(prov, indent=1, default=str))
    replace_file(tmp, path)


def pooled_vs_run(pooled: dict, ev) -> dict:
    """Paired per-fold PRAUC differences of each pooled model against each model of the run's own
    evaluation (teacher and student included): the folds are the same (`kgrec transfer` uses
    `kgrec evaluate --folds`' patients)."""
    from kgrec.evaluation import paired_difference

    out = {}
    for name, s in pooled["modes"]["pooled"]["models"].items():
        folds = s["metrics"]["prauc"]["folds"]
        out[name] = {m: paired_difference(folds, e.metric_folds("prauc")) for m, e in ev.models.items() if len(e.folds) == len(folds)}
    return out


def cv_figures(pooled: dict) -> dict:
    """The K-fold figures of the deployed ``student-pooled`` (for its provenance): PRAUC, and paired
    differences against its teacher and the run's in-domain models."""
    m = pooled["modes"]["pooled"]
    own = m["models"]["student-pooled"]["metrics"]["prauc"]
    out = {"folds": pooled["folds"], "prauc": {k: own[k] for k in ("mean", "std", "folds") if k in own},
           "vs_in_domain": (pooled.get("vs_run_models") or {}).get("student-pooled", {})}
    teacher = m["models"].get("site-ensemble-names")
    if teacher:
        from kgrec.evaluation import paired_difference

        out["vs_teacher_site-ensemble-names"] = paired_difference(own["folds"], teacher["metrics"]["prauc"]["folds"])
    return out
