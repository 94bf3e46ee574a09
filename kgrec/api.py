"""The Python API: one function per stage, each returning a result object. The CLI calls only these.

>>> import kgrec
>>> prep = kgrec.prepare("mimic3", workspace="ws", data_dir="../shared/data")
>>> res = kgrec.evaluate("ws", models=["frequency", "logreg"], folds=5)

Slightly over the ~400-line guide (410 lines): the stage functions and the main job's step handlers
stay in one module, the one a notebook user reads.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kgrec import stages
from kgrec import workspace as _ws
from kgrec.cohort import Cohort, Mappings, open_loader
from kgrec.cohort.ddi import load_ddi
from kgrec.cohort.split import split_patients
from kgrec.errors import InputError, WorkspaceError
from kgrec.evaluation import EvaluationResult, evaluate_models
from kgrec.progress import report as say
from kgrec.progress import reporting_to
from kgrec.stages import Reporter, StageResult, as_reporter
from kgrec.teacher.config import CPU_TEACHER  # the CPU teacher (below); imports no torch
from kgrec.workspace import cohort_dir, load_cohort, reports_dir


@dataclass
class PrepareResult:
    cohort: Cohort
    path: Path

    @property
    def stats(self) -> dict:
        return self.cohort.stats()


def prepare(
    source: str,
    workspace: Path | str = "kgrec-workspace",
    data_dir: Path | str | None = None,
    source_dir: Path | str | None = None,
    protocol: str = "all",
    seed: int = 42,
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    ddi_sources: Sequence[str] = ("safedrug",),
    *,
    db_url: str | None = None,
    db_schema: str | None = None,
    vocab_schema: str | None = None,
    visit_settings: Sequence[str] | None = None,
    cdm_version: str | None = None,
) -> PrepareResult:
    """Read an EHR source into ``<workspace>/cohort``: visits, code names, split, DDI pairs.

    Args:
        source: ``mimic3``, ``mimic4``, ``eicu``, ``synthea`` or ``omop``.
        data_dir: open-data root (mappings, DDI); also where the EHR folder is looked for by default.
        source_dir: the EHR tables' folder (default ``<data_dir>/<source's default folder>``).
        protocol: ``all`` (every visit) or ``safedrug`` (GAMENet/SafeDrug: patients with ≥2 full visits).
        ratios: train/val/test shares of patients for the saved split.
        ddi_sources: ``safedrug`` and/or ``drugbank`` (non-commercial).
        db_url: ``omop`` only: read the CDM from this SQLAlchemy URL instead of a folder.
        db_schema, vocab_schema: ``omop`` only: the CDM's and the vocabulary's schema in that database.
        visit_settings: ``omop`` only: the visit settings kept (default inpatient, emergency, outpatient).
        cdm_version: ``omop`` only: ``5.3`` or ``5.4`` where the CDM's ``cdm_source`` does not say.
    """
    if data_dir is None:
        raise InputError("no data folder: pass data_dir (CLI: --data-dir or KGREC_DATA)")
    say("prepare: reading the EHR tables (step 1/3)")
    mappings = Mappings(Path(data_dir))
    loader, where = open_loader(source, Path(data_dir), source_dir, mappings, db_url=db_url, db_schema=db_schema,
                                vocab_schema=vocab_schema, visit_settings=visit_settings, cdm_version=cdm_version)
    cohort = loader.load(protocol=protocol)
    if cohort.visits.empty:
        raise InputError(f"no visits left after reading {where} with protocol {protocol!r}", path=where)
    say(f"prepare: {len(cohort.visits):,} visits read; patient split and DDI pairs (step 2/3)")
    cohort.split = {"seed": seed, "ratios": list(ratios), **split_patients(cohort.visits["patient_id"].unique(), ratios, seed)}
    cohort.ddi = load_ddi(mappings, ddi_sources)
    say("prepare: writing the cohort (step 3/3)")
    path = cohort.save(cohort_dir(workspace))
    return PrepareResult(cohort, path)


def evaluate(
    workspace: Path | str = "kgrec-workspace",
    models: Sequence[str] = ("frequency", "logreg"),
    folds: int | None = None,
    seed: int = 42,
    n_boot: int = 1000,
    reference: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> EvaluationResult:
    """Evaluate models on the workspace cohort and save the report under ``<workspace>/reports``."""
    cohort = load_cohort(workspace)
    res = evaluate_models(cohort, models, folds=folds, seed=seed, n_boot=n_boot, reference=reference, progress=progress, workspace=workspace)
    res.save(reports_dir(workspace))
    return res


@dataclass
class RunResult:
    """What :func:`run` produced, stage by stage (:attr:`steps`: every step, ran or skipped and why)."""

    prepare: PrepareResult
    graph: object  # kgrec.graph.load.LoadResult
    evaluation: EvaluationResult
    seconds: dict
    stages: dict = field(default_factory=dict)  # kgrec.stages.AllResult.to_json() when models were trained
    steps: list[StageResult] = field(default_factory=list)
    path: Path | None = None  # <workspace>/reports/run.json
    pooled: dict | None = None  # kgrec.transfer.TransferResult.to_json() with --pool (in-domain and pooled modes)

    def to_json(self) -> dict:
        return {"stats": self.prepare.stats, "graph": self.graph.to_dict()["counts"], "steps": [s.to_json() for s in self.steps],
                "stages": self.stages, "evaluation": self.evaluation.to_json(), "seconds": self.seconds,
                **({"pooled": self.pooled} if self.pooled is not None else {})}

    def save(self, folder: Path | str) -> Path:
        """``<folder>/run.json`` (the steps, the cohort and graph counts, the evaluation, the times)."""
        from kgrec.fsatomic import write_text

        self.path = write_text(Path(folder) / "run.json", json.dumps(self.to_json(), indent=1, default=str))
        return self.path


# The teacher `kgrec run` trains by default: a frozen MiniLM whose pooled states are cached once, plus a
# linear term over the visit's codes (fuse_codes): minutes on a laptop CPU for 5-fold CV, and on the eICU
# demo the best teacher measured (docs/teacher.md). On a GPU pass e.g. ``teacher={"lora_r": 8,
# "graph_prompt": True}`` (the LEADER setting: LoRA + graph soft prompts) or a larger ``model``.
# the models `kgrec run --pool` also trains on the pooled sites (kgrec.transfer, mode "pooled")
POOL_MODELS = ("frequency", "logreg", "logreg-graph", "site-ensemble-names")
# logreg-graph: logistic regression over graph-grounded codes (kgrec.models.graph_logreg): level with logreg on
# the MIMIC-III demo, +0.0045 ± 0.0017 PRAUC (5/5 folds) on the eICU demo, whose codes mix ICD-9, ICD-10 and paths
RUN_MODELS = ("frequency", "logreg", "logreg-graph", "teacher", "student")


def run(
    source: str = "mimic3",
    workspace: Path | str = "kgrec-workspace",
    data_dir: Path | str | None = None,
    source_dir: Path | str | None = None,
    folds: int | None = 5,
    seed: int = 42,
    exclude_nc: bool = False,
    models: Sequence[str] = RUN_MODELS,
    teacher: dict | None = None,
    progress: Reporter | Callable[[str], None] | None = None,
    kge: dict | None = None,
    gnn: dict | None = None,
    student: dict | None = None,
    recipe: str = "kgrec",
    device: str = "auto",
    pool: Sequence[str] = (),
    pool_models: Sequence[str] = POOL_MODELS,
    pool_teacher: str = "site-ensemble-names",
    source_options: dict | None = None,
) -> RunResult:
    """The main job, end to end on the embedded store: prepare the cohort, build and load the knowledge
    graph, train the model stages (KGE -> GNN -> teacher -> distilled student, skipping current ones) when
    ``models`` include the teacher or the student, then evaluate ``models`` (K-fold CV by default).

    With folds, the embeddings are trained without Patient/Visit nodes (``patients="none"``): every
    patient is in some test fold. ``teacher``: :class:`~kgrec.teacher.TeacherConfig` fields (default
    :data:`CPU_TEACHER`); ``kge``, ``gnn``, ``student``: keyword arguments of those stages (e.g.
    ``{"epochs": 5}``). After the evaluation the ``explain`` step recommends, with rationale paths, DDI
    warnings and rationales, for three test visits of the saved split (``reports/explanations.json``;
    skipped when neither the student nor the teacher is among ``models``). Each step's :class:`~kgrec.stages.StageResult` is saved under
    ``<workspace>/reports/run/`` as it finishes, and the whole run in ``<workspace>/reports/run.json``.
    ``recipe``: ``kgrec`` (default) or ``leader`` (:mod:`kgrec.recipes`: the paper's teacher and student
    settings, under ``teacher``/``student``); ``device``: ``auto``, ``cpu`` or ``cuda`` for every stage.
    ``pool``: other sites to pool with (workspaces made by ``kgrec prepare``, or source names such as
    ``eicu``, prepared into ``<workspace>/pool/<name>``): ``pool_models`` are then also trained on the
    sources plus each fold's target training patients (:mod:`kgrec.transfer`, mode ``pooled``) and reported
    beside their in-domain rows (``RunResult.pooled``). With ``pool`` and the student among ``models``,
    the deployed student (``<workspace>/student``) is ``student-pooled``: distilled from ``pool_teacher``
    (default ``site-ensemble-names``, the pooled model that wins) over the pooled sites
    (:mod:`kgrec.transfer.deploy`), its K-fold row evaluated in the pool step beside its teacher's; the
    explain step runs on it. ``source_options``: :func:`prepare`'s OMOP options (``db_url``, ``db_schema``,
    ``vocab_schema``, ``visit_settings``, ``cdm_version``).
    """
    from kgrec.logs import quiet_third_party

    for item in pool:  # a wrong --pool or --pool-teacher fails before any work
        _pool_workspace(workspace, data_dir, str(item), seed, check_only=True)
    if pool:
        from kgrec.transfer.distill import check_teacher

        check_teacher(pool_teacher)
    quiet_third_party()
    rep = as_reporter(progress)
    # one run at a time per workspace (a second one stops at once, naming this one); epochs, encodings and
    # folds (kgrec.progress) as each stage's progress lines
    with stages.sole_writer(workspace, "kgrec run"), reporting_to(rep.detail):
        record = reports_dir(workspace) / "run"
        steps: list[StageResult] = []
        prep, step = _handle_prepare(source, workspace, data_dir, source_dir, seed, rep, source_options or {})
        steps.append(step)
        step.save(record)
        graph, step = _handle_graph(workspace, data_dir, exclude_nc, rep)
        steps.append(step)
        step.save(record)
        patients = "none" if folds else "train"
        from kgrec.recipes import recipe_settings

        r_teacher, r_student = recipe_settings(recipe)
        settings = {"kge": {"patients": patients, "seed": seed, "device": device, **(kge or {})},
                    "gnn": {"patients": patients, "seed": seed, "device": device, **(gnn or {})},
                    "teacher": {**CPU_TEACHER, **r_teacher, **(teacher or {}), "seed": seed, "device": device},
                    "distill": {"seed": seed, **r_student, **(student or {}), "device": device}}
        sources = [_pool_workspace(workspace, data_dir, str(p), seed) for p in pool]
        runners = None
        if sources and "student" in models:  # the deployed student is distilled from the pooled teacher (kgrec.transfer.deploy)
            from kgrec.transfer.deploy import site_keys

            settings["distill"] = {**settings["distill"], "pool": [str(s) for s in sources], "pool_keys": site_keys(sources), "teacher": pool_teacher}
            runners = {**stages.RUNNERS, "distill": stages.train_pooled_student}
        trained, train_steps = _handle_training(workspace, settings, models, rep, record, runners)
        steps += train_steps
        ev, eval_step = _handle_evaluate(workspace, models, folds, seed, rep)
        steps.append(eval_step)
        eval_step.save(record)
        pooled = None
        if pool:
            deployed = ("student-pooled",) if runners is not None else ()
            pooled, pool_step = _handle_pool(workspace, sources, tuple(dict.fromkeys((*pool_models, *deployed))), folds or 5, seed, rep, ev if folds else None)
            from kgrec.transfer.deploy import cv_figures, pooled_vs_run, record_cv

            pooled["vs_run_models"] = pooled_vs_run(pooled, ev)
            if deployed and "student-pooled" in pooled["modes"]["pooled"]["models"]:
                record_cv(workspace, cv_figures(pooled))
            steps.append(pool_step)
            pool_step.save(record)
        step = _handle_explain(workspace, models, rep)  # the chain's last link, on the deployed student
        steps.append(step)
        step.save(record)
        seconds = {"prepare": steps[0].seconds, "load_graph": steps[1].seconds, "train": round(sum(s.seconds for s in train_steps), 2),
                   "evaluate": eval_step.seconds}
        if pooled is not None:
            seconds["pool"] = pool_step.seconds
        seconds["explain"] = step.seconds
        seconds["total"] = round(sum(seconds.values()), 2)
        res = RunResult(prep, graph, ev, seconds, trained, steps)
        res.pooled = pooled
        res.save(reports_dir(workspace))
        return res


def _pool_workspace(workspace, data_dir, item: str, seed: int, check_only: bool = False) -> Path:
    """A pool site: a workspace folder as it is, or a source name prepared into ``<workspace>/pool/<name>``."""
    from kgrec.cohort import LOADERS

    path = Path(item)
    if (path / "cohort").is_dir():
        return path
    if item in LOADERS:
        if check_only:
            return path
        dest = Path(workspace) / "pool" / item
        prepare(item, dest, data_dir, seed=seed)
        return dest
    raise WorkspaceError(f"--pool {item!r}: neither a workspace (no {path / 'cohort'}) nor a source ({', '.join(sorted(LOADERS))})")


def _handle_pool(workspace, sources: Sequence[Path], models: Sequence[str], folds: int, seed: int, rep: Reporter, in_domain=None):
    from kgrec.transfer import transfer

    pool = sources
    rep.start("pool", f"{', '.join(models)} trained on {', '.join(map(str, pool))} + the target's training folds")
    t0 = time.perf_counter()
    res = transfer(workspace, sources, modes=("pooled",), models=tuple(models), folds=folds, seed=seed, progress=rep.detail, in_domain=in_domain)
    sec = round(time.perf_counter() - t0, 2)
    pooled = res.to_json()
    figure = "PRAUC pooled − in-domain logreg: " + ", ".join(
        f"{m} {d['prauc']['mean']:+.3f} ({d['prauc']['n_better']}/{len(d['prauc']['folds'])})"
        for m, d in pooled["modes"]["pooled"]["paired_differences"].items() if m != "reference")
    step = StageResult("pool", True, "--pool given", sec, figure, {"report": str(Path(workspace) / "reports" / "transfer"), "sources": [str(s) for s in sources]})
    rep.end(step)
    return pooled, step


EXPLAIN_VISITS = 3  # test visits of the saved split that `kgrec run` explains


def _handle_explain(workspace, models: Sequence[str], rep: Reporter, n_visits: int = EXPLAIN_VISITS) -> StageResult:
    """The chain's last link (:func:`kgrec.explain.report.explain_test_visits`), with the student, else the teacher."""
    from kgrec.explain.report import explain_test_visits

    model = next((m for m in ("student", "teacher") if m in models and (Path(workspace) / m).is_dir()), None)
    if model is None:
        step = StageResult("explain", False, f"no trained student or teacher among the models ({', '.join(models)})")
        rep.end(step)
        return step
    rep.start("explain", f"recommending with rationale paths and DDI warnings ({model}, {n_visits} test visits)")
    out, sec = _timed(explain_test_visits, workspace, model, n_visits)
    figure = (f"{len(out['visits'])} test visits, {out['n_drugs']} drugs, {out['n_drugs_with_paths']} with rationale paths "
              f"({out['n_paths']} paths), {out['n_ddi_warnings']} DDI warnings")
    step = StageResult("explain", True, "always (the chain's last link)", sec, figure, out)
    rep.end(step)
    return step


def _timed(fn: Callable, *args, **kwargs) -> tuple[object, float]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, round(time.perf_counter() - t0, 2)


def _handle_prepare(source, workspace, data_dir, source_dir, seed, rep: Reporter, options: dict) -> tuple[PrepareResult, StageResult]:
    rep.start("prepare", f"reading {source}")
    prep, sec = _timed(prepare, source, workspace, data_dir, source_dir, seed=seed, **options)
    st = prep.stats
    step = StageResult("prepare", True, "always (the cohort is re-read from the source)", sec,
                       f"{st['n_patients']} patients, {st['n_visits']} visits", {"path": str(prep.path), "stats": st})
    rep.end(step)
    return prep, step


def _handle_graph(workspace, data_dir, exclude_nc, rep: Reporter) -> tuple[object, StageResult]:
    from kgrec.graph.load import load_graph

    rep.start("load-graph", "building the knowledge graph (embedded store)")
    graph, sec = _timed(load_graph, workspace, data_dir, store="embedded", exclude_nc=exclude_nc)
    counts = graph.to_dict()["counts"]
    step = StageResult("load-graph", True, "always (the graph follows the new cohort)", sec,
                       f"{counts['n_nodes']:,} nodes, {counts['n_edges']:,} edges", {"counts": counts})
    rep.end(step)
    return graph, step


def _handle_training(workspace, settings: dict, models: Sequence[str], rep: Reporter, record: Path, runners: dict | None = None) -> tuple[dict, list[StageResult]]:
    """The model stages (:func:`kgrec.stages.run_all`), or a skipped step per stage when no model needs them."""
    if not any(m in ("teacher", "student") for m in models):
        skipped = [StageResult(s, False, f"no model to evaluate needs it (models: {', '.join(models)})") for s in stages.STAGES]
        for s in skipped:
            s.save(record)
            rep.end(s)
        return {}, skipped
    out = stages.run_all(workspace, settings, runners=runners, progress=rep, record=record)
    return out.to_json(), list(out.stages)


def _handle_evaluate(workspace, models: Sequence[str], folds: int | None, seed: int, rep: Reporter) -> tuple[EvaluationResult, StageResult]:
    what = f"{folds}-fold patient-level CV" if folds else "the saved split"
    rep.start("evaluate", f"{', '.join(models)} on {what}")
    ev, sec = _timed(evaluate, workspace, tuple(models), folds=folds, seed=seed, progress=rep.detail)
    figure = "PRAUC " + ", ".join(f"{name} {_mean(e.summary['metrics'].get('prauc')):.3f}" for name, e in ev.models.items())
    step = StageResult("evaluate", True, "always", sec, figure, {"report": str(reports_dir(workspace))})
    rep.end(step)
    return ev, step


def _mean(v) -> float:
    return float(v["mean"]) if isinstance(v, dict) else float("nan") if v is None else float(v)


def train_kge(workspace: Path | str = "kgrec-workspace", **kwargs):
    """PyKEEN embeddings of the workspace graph (see :func:`kgrec.embed.train.run_kge`)."""
    return stages.train_kge(workspace, **kwargs)


def train_gnn(workspace: Path | str = "kgrec-workspace", **kwargs):
    """R-GCN embeddings of the workspace graph (see :func:`kgrec.embed.train.run_gnn`)."""
    return stages.train_gnn(workspace, **kwargs)


def train_teacher(workspace: Path | str = "kgrec-workspace", progress: bool = True, **config):
    """LEADER-style teacher on the saved split, saved to ``<workspace>/teacher/`` (see
    :func:`kgrec.teacher.split.train_on_split`; keyword arguments are :class:`~kgrec.teacher.TeacherConfig` fields)."""
    return stages.train_teacher(workspace, progress=progress, **config)


def train_student(workspace: Path | str = "kgrec-workspace", progress: bool = True, teacher_config=None, **config):
    """The distilled student on the saved split, saved to ``<workspace>/student/`` (keyword arguments are
    :class:`~kgrec.student.train.StudentConfig` fields: ``alpha``, ``beta``, ``temperature``, ...)."""
    return stages.train_student(workspace, progress=progress, teacher_config=teacher_config, **config)


def train_pooled_student(workspace: Path | str, pool: Sequence[str], teacher: str = "site-ensemble-names", seed: int = 42, device: str = "auto", progress: bool = True):
    """The student distilled from ``teacher`` over this workspace's saved split plus every patient of the
    ``pool`` sites (workspaces, or source names prepared into ``<workspace>/pool/<name>``), deployed to
    ``<workspace>/student/`` (:func:`kgrec.transfer.deploy.train_pooled_on_split`)."""
    from kgrec.transfer.deploy import prepared_sites
    from kgrec.transfer.distill import check_teacher

    check_teacher(teacher)
    return stages.train_pooled_student(workspace, progress, prepared_sites(workspace, pool), teacher, seed=seed, device=device)


def load_model(workspace: Path | str, name: str = "student"):
    """A trained recommender from the workspace: ``student`` (``<ws>/student``) or ``teacher`` (``<ws>/teacher``)."""
    return _ws.load_model(workspace, name)


def recommend(
    workspace: Path | str = "kgrec-workspace",
    visit_id: str | None = None,
    patient=None,
    model: str = "student",
    top_k: int = 10,
    threshold: float | None = None,
    store: str | None = "embedded",
    paths_per_drug: int = 3,
    current_drugs: Sequence[str] | None = None,
    drugs: Sequence[str] | None = None,
    store_kw: dict | None = None,
):
    """Ranked ATC3 drugs for a workspace visit (``visit_id``) or a new patient (``patient``: a dict, JSON
    text, a ``.json`` path or a :class:`~kgrec.explain.recommend.PatientIn`), with probabilities, DDI
    warnings (among the recommended drugs and against ``current_drugs``), rationale paths and a
    natural-language rationale per drug, and the codes the model does not know. Returns a
    :class:`~kgrec.explain.recommend.Recommendation` (``.to_dict()`` for JSON). For many calls keep a
    :class:`~kgrec.explain.recommend.RecommendService` (loads the model and opens the store once)."""
    from kgrec.explain.recommend import recommend as _recommend

    return _recommend(workspace, visit_id, patient, model, top_k, threshold, store, paths_per_drug, current_drugs, drugs, store_kw)
