"""`kgrec train --stage all`: kge -> gnn -> teacher -> distill, skipping stages whose outputs are current.

A stage writes ``stage.json`` beside its outputs when it finishes: its settings and the modification
times of the inputs it read. On the next run the stage is skipped when that stamp exists, the settings
are the same and no input changed. A stage interrupted half-way writes no stamp, so the next run
redoes it (resumable), and a redone stage makes every later stage stale through their inputs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

STAGES = ("kge", "gnn", "teacher", "distill")


def _inputs(workspace: Path, stage: str) -> list[Path]:
    ws = Path(workspace)
    tables = ws / "graph" / "tables"
    cohort = ws / "cohort" / "visits.parquet"
    kge = ws / "embed" / "kge" / "vectors.safetensors"
    gnn = ws / "embed" / "gnn" / "vectors.safetensors"
    teacher = ws / "teacher" / "stage.json"
    return {
        "kge": [tables, cohort],
        "gnn": [tables, kge],
        "teacher": [cohort, kge, gnn],
        "distill": [cohort, kge, gnn, teacher],
    }[stage]


def _outdir(workspace: Path, stage: str) -> Path:
    ws = Path(workspace)
    return {"kge": ws / "embed" / "kge", "gnn": ws / "embed" / "gnn", "teacher": ws / "teacher", "distill": ws / "student"}[stage]


def _mtime(p: Path) -> int | None:
    if not p.exists():
        return None
    if p.is_dir():
        return max((q.stat().st_mtime_ns for q in p.rglob("*") if q.is_file()), default=None)
    return p.stat().st_mtime_ns


def fingerprint(workspace: Path, stage: str, settings: dict) -> dict:
    return {"settings": settings, "inputs": {str(p.relative_to(workspace)): _mtime(p) for p in _inputs(workspace, stage)}}


def is_current(workspace: Path, stage: str, settings: dict) -> bool:
    stamp = _outdir(workspace, stage) / "stage.json"
    if not stamp.exists():
        return False
    return json.loads(stamp.read_text()) == json.loads(json.dumps(fingerprint(workspace, stage, settings), default=str))


def mark_done(workspace: Path, stage: str, settings: dict) -> None:
    out = _outdir(workspace, stage)
    out.mkdir(parents=True, exist_ok=True)
    (out / "stage.json").write_text(json.dumps(fingerprint(workspace, stage, settings), default=str, indent=1))


def train_kge(workspace: Path | str, progress: bool = True, **kwargs):
    """PyKEEN embeddings of the workspace graph (see :func:`kgrec.embed.train.run_kge`)."""
    from kgrec.embed.train import run_kge

    return run_kge(workspace, progress=progress, **kwargs)


def train_gnn(workspace: Path | str, progress: bool = True, **kwargs):
    """R-GCN embeddings of the workspace graph (see :func:`kgrec.embed.train.run_gnn`)."""
    from kgrec.embed.train import run_gnn

    return run_gnn(workspace, progress=progress, **kwargs)


def train_teacher(workspace: Path | str, progress: bool = True, **config):
    """The teacher on the saved split (:func:`kgrec.teacher.split.train_on_split`; ``config``:
    :class:`~kgrec.teacher.config.TeacherConfig` fields)."""
    from kgrec.teacher.config import TeacherConfig
    from kgrec.teacher.split import train_on_split

    return train_on_split(workspace, TeacherConfig(**config), progress=progress)


def train_student(workspace: Path | str, progress: bool = True, teacher_config=None, **config):
    """The distilled student on the saved split (:func:`kgrec.student.stage.train_on_split`; ``config``:
    :class:`~kgrec.student.train.StudentConfig` fields)."""
    from kgrec.student.stage import train_on_split
    from kgrec.student.train import StudentConfig

    return train_on_split(workspace, StudentConfig.from_dict(config), teacher_config=teacher_config, progress=progress)


RUNNERS: dict[str, Callable[..., object]] = {"kge": train_kge, "gnn": train_gnn, "teacher": train_teacher, "distill": train_student}


@dataclass
class AllResult:
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    results: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"ran": self.ran, "skipped": self.skipped, "seconds": self.seconds, "results": self.results}


def run_all(
    workspace: Path | str,
    settings: dict[str, dict] | None = None,
    runners: dict[str, Callable[..., object]] | None = None,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> AllResult:
    """Run every stage in order. ``settings[stage]`` are the keyword arguments of that stage's API call
    (:data:`RUNNERS`: :func:`train_kge`, :func:`train_gnn`, :func:`train_teacher`, :func:`train_student`)."""
    ws = Path(workspace)
    settings = settings or {}
    runners = runners or RUNNERS
    res = AllResult()
    for stage in STAGES:
        kw = dict(settings.get(stage, {}))
        if not force and is_current(ws, stage, kw):
            res.skipped.append(stage)
            if progress:
                progress(f"{stage}: current, skipped")
            continue
        if progress:
            progress(f"{stage}: training")
        t0 = time.perf_counter()
        out = runners[stage](ws, progress=False, **kw)
        res.seconds[stage] = round(time.perf_counter() - t0, 2)
        res.results[stage] = out.to_json() if hasattr(out, "to_json") else out
        mark_done(ws, stage, kw)
        res.ran.append(stage)
    return res
