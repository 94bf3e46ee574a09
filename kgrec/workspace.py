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


def load_model(workspace: Path | str, name: str = "student"):
    """A trained recommender from the workspace: ``student`` (``<ws>/student``) or ``teacher`` (``<ws>/teacher``)."""
    from kgrec.models import get_model

    folder = model_dir(workspace, name)
    marker, command = SAVED_MODELS[name][1:]
    if not (folder / marker).exists():
        raise WorkspaceError(f"no trained {name} in {folder}: run `{command}")
    return get_model(name).load(folder)
