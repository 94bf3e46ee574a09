"""A workspace folder: where each stage saves its outputs, and loading them back.

Layout (one folder per stage, each written by that stage only)::

    <workspace>/cohort/         visits, codes, split, DDI pairs        (kgrec prepare)
    <workspace>/graph/tables/   node and edge tables                   (kgrec load-graph)
    <workspace>/embed/<kind>/   KGE / GNN vectors with their id maps   (kgrec train --stage kge|gnn)
    <workspace>/teacher/        the trained teacher (+ cached teachers per training patients)
    <workspace>/student/        the distilled student
    <workspace>/reports/        evaluation reports

Stages after the cohort import this module instead of the façade (:mod:`kgrec.api`), so imports
point one way. Saved models are loaded through the model registry (:func:`kgrec.models.get_model`:
names resolve to classes on lookup), so this module imports no model code.
"""

from __future__ import annotations

from pathlib import Path

from kgrec.cohort.base import Cohort
from kgrec.errors import WorkspaceError

# name -> (folder, a file a trained model always has, the command that trains it)
SAVED_MODELS: dict[str, tuple[str, str, str]] = {
    "student": ("student", "student.json", "kgrec train --stage distill` (or --stage all)"),
    "teacher": ("teacher", "config.json", "kgrec train --stage teacher`"),
}


def cohort_dir(workspace: Path | str) -> Path:
    return Path(workspace) / "cohort"


def graph_dir(workspace: Path | str) -> Path:
    return Path(workspace) / "graph"


def tables_dir(workspace: Path | str) -> Path:
    return graph_dir(workspace) / "tables"


def embed_dir(workspace: Path | str) -> Path:
    return Path(workspace) / "embed"


def model_dir(workspace: Path | str, name: str) -> Path:
    """``<workspace>/student`` or ``<workspace>/teacher``."""
    if name not in SAVED_MODELS:
        raise ValueError(f"unknown model {name!r}: choose {' or '.join(SAVED_MODELS)}")
    return Path(workspace) / SAVED_MODELS[name][0]


def reports_dir(workspace: Path | str) -> Path:
    return Path(workspace) / "reports"


def _files_sha256(files) -> str | None:
    import hashlib

    h, any_file = hashlib.sha256(), False
    for f in files:
        any_file = True
        h.update(f.name.encode() + b"\x1f")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:32] if any_file else None


def cohort_key(workspace: Path | str) -> str | None:
    """sha256 of the saved cohort's visit and code tables (None: no cohort): the same visits prepared
    again give the same key, a re-prepared different cohort another."""
    folder = cohort_dir(workspace)
    return _files_sha256([p for p in (folder / "visits.parquet", folder / "codes.parquet") if p.is_file()])


def graph_key(workspace: Path | str) -> str | None:
    """sha256 of the graph's node and edge tables (None: no graph loaded)."""
    folder = tables_dir(workspace)
    return _files_sha256(sorted(folder.rglob("*.parquet"))) if folder.is_dir() else None


def load_cohort(workspace: Path | str) -> Cohort:
    """The cohort ``kgrec prepare`` saved."""
    return Cohort.load(cohort_dir(workspace))


def load_tables(workspace: Path | str):
    """The graph's node and edge tables (:class:`~kgrec.graph.tables.GraphTables`) ``kgrec load-graph`` saved."""
    from kgrec.graph.tables import GraphTables

    folder = tables_dir(workspace)
    if not folder.is_dir():
        raise WorkspaceError(f"no graph tables in {folder}: run `kgrec load-graph` first")
    return GraphTables.load(folder)


def load_vectors(workspace: Path | str):
    """The fused entity vectors with their id map (:class:`~kgrec.embed.vectors.EntityVectors`)."""
    from kgrec.embed.vectors import load_entity_vectors

    return load_entity_vectors(workspace)


STUDENT_KINDS = ("student", "student-wide")


def saved_student_kind(folder: Path | str) -> str:
    """The registry name of the student saved in ``folder`` (its ``student.json``'s ``kind``): ``student-wide``
    (:class:`kgrec.student.linear.WideStudent`, what ``kgrec run --pool`` deploys) or ``student`` (the
    network student, also when the file names no other kind or cannot be read: its loader then names
    what is wrong with it)."""
    import json

    try:
        kind = json.loads((Path(folder) / "student.json").read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        return "student"
    return kind if kind in STUDENT_KINDS else "student"


def load_model(workspace: Path | str, name: str = "student"):
    """A trained recommender from the workspace: ``student`` (``<ws>/student``) or ``teacher`` (``<ws>/teacher``)."""
    from kgrec.models import get_model

    folder = model_dir(workspace, name)
    marker, command = SAVED_MODELS[name][1:]
    if not (folder / marker).exists():
        raise WorkspaceError(f"no trained {name} in {folder}: run `{command}")
    kind = saved_student_kind(folder) if name == "student" else name  # the wide student loads and scores without torch
    model = get_model(kind).load(folder)
    check_deployed(workspace, getattr(model, "provenance", None) or {}, folder)
    return model


def check_deployed(workspace: Path | str, provenance: dict, folder: Path) -> None:
    """A :class:`WorkspaceError` naming what is stale when a saved model's cohort or graph key (its
    ``provenance.json``) no longer matches the workspace, and the command that trains it again."""
    problems = []
    target = (provenance.get("sites") or {}).get(provenance.get("target"), {})
    now = cohort_key(workspace)
    if target.get("cohort_key") and now and target["cohort_key"] != now:
        problems.append("the cohort was prepared again with other visits since it was trained")
    now = graph_key(workspace)
    if provenance.get("graph_key") and now and provenance["graph_key"] != now:
        problems.append("the graph was loaded again with other content since it was trained")
    if not problems:
        return
    ws = Path(workspace)
    if provenance.get("model") == "student-pooled":
        others = " ".join(f"--pool {s['workspace']}" for n, s in provenance["sites"].items() if n != provenance.get("target"))
        fix = f"kgrec train --stage distill -w {ws} {others} --teacher {provenance.get('teacher')}` (or `kgrec run -w {ws} --pool ...`)"
    else:
        fix = f"kgrec train --stage distill -w {ws}` (or `kgrec run -w {ws}`)"
    raise WorkspaceError(f"the {provenance.get('model', 'model')} in {folder} is stale: {'; '.join(problems)}. Train it again: `{fix}")
