"""The model stages, kge -> gnn -> teacher -> distill, as a chain of stage helpers (``train --stage all``,
and the training part of ``kgrec run``).

Each helper returns a :class:`StageResult`: whether the stage ran or was skipped, and why; its time and
key figure; the stage's own result. A result saves itself (:meth:`StageResult.save`), so a run records
every stage it finished even when a later one fails.

A stage writes ``stage.json`` beside its outputs when it finishes: its settings and the modification
times of the inputs it read. On the next run the stage is skipped when that stamp exists, the settings
are the same and no input changed. A stage interrupted half-way writes no stamp, so the next run
redoes it (resumable), and a redone stage makes every later stage stale through their inputs.

Progress goes to a :class:`Reporter` (``start``/``detail``/``end``): the CLI prints one line when a
stage starts and one when it ends when its output is not a terminal (see :mod:`kgrec.cli.common`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from kgrec.progress import reporting_to

STAGES = ("kge", "gnn", "teacher", "distill")


# ---------------- results and progress ----------------
@dataclass
class StageResult:
    """One stage of a run: ``ran`` (or skipped), ``reason`` (why it ran, or why it was skipped)."""

    stage: str
    ran: bool
    reason: str
    seconds: float = 0.0
    figure: str = ""  # the key figure in a few words ("test PRAUC 0.612"); "" when skipped
    output: dict = field(default_factory=dict)  # the stage's own result (its to_json())

    def to_json(self) -> dict:
        return {"stage": self.stage, "status": "ran" if self.ran else "skipped", "reason": self.reason,
                "seconds": self.seconds, "figure": self.figure, "output": self.output}

    def save(self, folder: Path | str) -> Path:
        """``<folder>/<stage>.json`` (written to a temporary file, then renamed into place)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.stage}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1, default=str))
        os.replace(tmp, path)
        return path


class Reporter(Protocol):
    def start(self, stage: str, what: str) -> None: ...
    def detail(self, message: str) -> None: ...
    def end(self, result: StageResult) -> None: ...


class MessageReporter:
    """A :class:`Reporter` over a ``progress(message)`` callable (or nothing): every event one message."""

    def __init__(self, progress: Callable[[str], None] | None = None):
        self.progress = progress or (lambda m: None)

    def start(self, stage: str, what: str) -> None:
        self.progress(f"{stage}: {what}")

    def detail(self, message: str) -> None:
        self.progress(message)

    def end(self, result: StageResult) -> None:
        self.progress(end_line(result))


def as_reporter(progress: Reporter | Callable[[str], None] | None) -> Reporter:
    return progress if hasattr(progress, "start") and hasattr(progress, "end") else MessageReporter(progress)  # type: ignore[return-value]


def end_line(r: StageResult) -> str:
    """``kge: done in 41.2 s, MRR 0.214`` / ``gnn: skipped (outputs current: ...)``."""
    if not r.ran:
        return f"{r.stage}: skipped ({r.reason})"
    return f"{r.stage}: done in {r.seconds:.1f} s" + (f", {r.figure}" if r.figure else "")


def key_figure(stage: str, out: dict) -> str:
    """The number a person looks at first in a stage's result."""
    metrics = out.get("metrics") if isinstance(out, dict) else None
    if stage in ("kge", "gnn") and isinstance(metrics, dict) and "mrr" in metrics:
        cache = out.get("cache") or {}
        if not cache.get("used"):
            return f"held-out MRR {metrics['mrr']:.3f}"
        how = "from the shared cache" if cache.get("hit") else "trained into the shared cache"
        return (f"held-out MRR {metrics['mrr']:.3f}, {how} ({cache.get('filled_from_neighbours', 0):,} filled from neighbours, "
                f"{cache.get('missing', 0):,} missing)")
    test = out.get("test") if isinstance(out, dict) else None
    if isinstance(test, dict) and isinstance(test.get("metrics"), dict) and "prauc" in test["metrics"]:
        return f"test PRAUC {test['metrics']['prauc']:.3f}"
    return ""


# ---------------- what is current ----------------
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


def staleness(workspace: Path, stage: str, settings: dict) -> str | None:
    """Why ``stage`` must run (no earlier run, changed settings, a changed input), or None when current."""
    stamp = _outdir(workspace, stage) / "stage.json"
    if not stamp.exists():
        return "no finished earlier run"
    old = json.loads(stamp.read_text())
    now = json.loads(json.dumps(fingerprint(workspace, stage, settings), default=str))
    if old.get("settings") != now["settings"]:
        changed = sorted(k for k in set(old.get("settings", {})) | set(now["settings"]) if old.get("settings", {}).get(k) != now["settings"].get(k))
        return f"settings changed: {', '.join(changed)}"
    changed = sorted(k for k in now["inputs"] if old.get("inputs", {}).get(k) != now["inputs"][k])
    if changed:
        return f"input changed: {', '.join(changed)}"
    return None


def is_current(workspace: Path, stage: str, settings: dict) -> bool:
    return staleness(workspace, stage, settings) is None


def mark_done(workspace: Path, stage: str, settings: dict) -> None:
    out = _outdir(workspace, stage)
    out.mkdir(parents=True, exist_ok=True)
    (out / "stage.json").write_text(json.dumps(fingerprint(workspace, stage, settings), default=str, indent=1))


# ---------------- the stages ----------------
@contextmanager
def sole_writer(workspace: Path | str, what: str) -> Iterator[None]:
    """Train into ``workspace`` as its only writer (:func:`kgrec.writelock.one_writer`): a second run on the
    same workspace at once — another ``kgrec run``, ``kgrec train`` or ``accelerate launch`` — stops with
    one clear error instead of overwriting this one's model. Under ``accelerate launch`` only rank 0 takes
    the lock (it alone writes, :mod:`kgrec.student.ddp`); when it stops, the launcher stops the other ranks."""
    from kgrec.writelock import one_writer
    from kgrec.student.ddp import is_main

    if not is_main():
        yield
        return
    with one_writer(Path(workspace), what):
        yield


def _one_writer(stage: str) -> Callable[[Callable[..., object]], Callable[..., object]]:
    """The stage function runs under :func:`sole_writer`."""
    import functools

    def wrap(fn: Callable[..., object]) -> Callable[..., object]:
        @functools.wraps(fn)
        def run(workspace: Path | str, *args, **kwargs):
            with sole_writer(workspace, f"kgrec {stage} stage"):
                return fn(workspace, *args, **kwargs)

        return run

    return wrap


@_one_writer("kge")
def train_kge(workspace: Path | str, progress: bool = True, **kwargs):
    """PyKEEN embeddings of the workspace graph (see :func:`kgrec.embed.train.run_kge`)."""
    from kgrec.embed.train import run_kge

    return run_kge(workspace, progress=progress, **kwargs)


@_one_writer("gnn")
def train_gnn(workspace: Path | str, progress: bool = True, **kwargs):
    """R-GCN embeddings of the workspace graph (see :func:`kgrec.embed.train.run_gnn`)."""
    from kgrec.embed.train import run_gnn

    return run_gnn(workspace, progress=progress, **kwargs)


@_one_writer("teacher")
def train_teacher(workspace: Path | str, progress: bool = True, **config):
    """The teacher on the saved split (:func:`kgrec.teacher.split.train_on_split`; ``config``:
    :class:`~kgrec.teacher.config.TeacherConfig` fields)."""
    from kgrec.teacher.config import TeacherConfig
    from kgrec.teacher.split import train_on_split

    return train_on_split(workspace, TeacherConfig(**config), progress=progress)


@_one_writer("distill")
def train_student(workspace: Path | str, progress: bool = True, teacher_config=None, **config):
    """The distilled student on the saved split (:func:`kgrec.student.stage.train_on_split`; ``config``:
    :class:`~kgrec.student.train.StudentConfig` fields)."""
    from kgrec.student.stage import train_on_split
    from kgrec.student.train import StudentConfig

    return train_on_split(workspace, StudentConfig.from_dict(config), teacher_config=teacher_config, progress=progress)


@_one_writer("distill")
def train_pooled_student(workspace: Path | str, progress: bool = True, pool: Sequence[str] = (), teacher: str = "site-ensemble-names",
                         pool_keys: dict | None = None, seed: int = 42, **config):
    """The distill stage with other sites pooled (:func:`kgrec.transfer.deploy.train_pooled_on_split`): the
    student distilled from ``teacher`` over the target's saved split plus every patient of ``pool``, deployed
    to ``<workspace>/student/``. ``pool_keys`` (the sites' cohort keys) only key the stage's stamp."""
    from kgrec.transfer.deploy import train_pooled_on_split

    return train_pooled_on_split(workspace, list(pool), teacher, {"seed": seed, **config}, seed=seed, progress=progress)


RUNNERS: dict[str, Callable[..., object]] = {"kge": train_kge, "gnn": train_gnn, "teacher": train_teacher, "distill": train_student}
WHAT = {"kge": "PyKEEN knowledge-graph embeddings", "gnn": "R-GCN (PyG) embeddings", "teacher": "the teacher on the saved split",
        "distill": "the student, distilled from the teacher"}


def _handle_stage(ws: Path, stage: str, settings: dict, runner: Callable[..., object], force: bool, rep: Reporter) -> StageResult:
    """Run one model stage unless its outputs are current; stamp it when it finishes."""
    why = "forced (--force)" if force else staleness(ws, stage, settings)
    if why is None:
        res = StageResult(stage, False, "outputs current: same settings, inputs unchanged")
        rep.end(res)
        return res
    what = WHAT[stage] if not settings.get("pool") else f"the student, distilled from the pooled {settings.get('teacher')} (with {len(settings['pool'])} more site(s))"
    rep.start(stage, f"training {what} ({why})")
    t0 = time.perf_counter()
    with reporting_to(rep.detail):  # epochs and encodings (kgrec.progress) as the stage's progress lines
        out = runner(ws, progress=False, **settings)
    seconds = round(time.perf_counter() - t0, 2)
    out_json = out.to_json() if hasattr(out, "to_json") else out
    mark_done(ws, stage, settings)
    res = StageResult(stage, True, why, seconds, key_figure(stage, out_json), out_json)
    rep.end(res)
    return res


@dataclass
class AllResult:
    """What :func:`run_all` did: the stages in order (:attr:`stages`), and the short lists."""

    stages: list[StageResult] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    results: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)

    def add(self, r: StageResult) -> None:
        self.stages.append(r)
        if r.ran:
            self.ran.append(r.stage)
            self.results[r.stage] = r.output
            self.seconds[r.stage] = r.seconds
        else:
            self.skipped.append(r.stage)

    def to_json(self) -> dict:
        return {"ran": self.ran, "skipped": self.skipped, "seconds": self.seconds, "results": self.results,
                "stages": [s.to_json() for s in self.stages]}


def run_all(
    workspace: Path | str,
    settings: dict[str, dict] | None = None,
    runners: dict[str, Callable[..., object]] | None = None,
    force: bool = False,
    progress: Reporter | Callable[[str], None] | None = None,
    record: Path | str | None = None,
) -> AllResult:
    """Run every stage in order. ``settings[stage]`` are the keyword arguments of that stage's call
    (:data:`RUNNERS`: :func:`train_kge`, :func:`train_gnn`, :func:`train_teacher`, :func:`train_student`).
    ``record``: a folder where each stage's :class:`StageResult` is saved as it finishes."""
    ws = Path(workspace)
    settings = settings or {}
    runners = runners or RUNNERS
    rep = as_reporter(progress)
    res = AllResult()
    with sole_writer(ws, "kgrec train --stage all"):  # the whole chain, not just each stage
        for stage in STAGES:
            r = _handle_stage(ws, stage, dict(settings.get(stage, {})), runners[stage], force, rep)
            if record is not None:
                r.save(record)
            res.add(r)
    return res
