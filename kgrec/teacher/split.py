"""``kgrec train --stage teacher``: train on the saved split's train part (early stopping on val), test
once, save to ``<workspace>/teacher/``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from kgrec.errors import WorkspaceError
from kgrec.teacher.config import TeacherConfig, json_default, teacher_dir
from kgrec.teacher.recommender import TeacherRecommender
from kgrec.workspace import load_cohort


@dataclass
class TeacherTrainResult:
    """What ``kgrec train --stage teacher`` produced."""

    path: Path
    val: dict
    test: dict
    chosen: dict
    log: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {"stage": "teacher", "path": str(self.path), "validation": self.val, "test": self.test,
                "chosen": self.chosen, "epochs": self.log, "train_seconds": self.seconds}


def train_on_split(workspace: Path | str, config: TeacherConfig | None = None, progress: bool = True) -> TeacherTrainResult:
    """Train on the saved split's train part (early stopping on val), test once, save to ``<workspace>/teacher/``."""
    from kgrec.embed.vectors import embed_dir
    from kgrec.evaluation import fit_on_split

    config = config or TeacherConfig()
    config.validate()
    cohort = load_cohort(workspace)
    if not cohort.split:
        raise WorkspaceError("the cohort has no saved split: re-run `kgrec prepare`")
    if ((config.graph_prompt and config.soft_tokens) or config.fuse_graph) and not any(embed_dir(workspace).glob("*/vectors.safetensors")):
        raise WorkspaceError(f"no embeddings in {embed_dir(workspace)}: the graph prompt needs `kgrec train --stage kge` first, or pass --no-graph-prompt")
    vocab = cohort.vocab("drug")
    if not vocab:
        raise WorkspaceError("the cohort has no mapped drugs: nothing to recommend")
    rec = TeacherRecommender(vocab, config, workspace=workspace, progress=progress)
    out = fit_on_split(rec, cohort)
    seconds = out["fit_seconds"]
    path = teacher_dir(workspace)
    result = TeacherTrainResult(path, out["val"], out["test"], rec.chosen, rec.log, round(seconds, 2))
    acc = getattr(rec, "accelerator", None)
    if acc is not None:
        acc.wait_for_everyone()
    if acc is None or acc.is_main_process:  # `accelerate launch`: one writer
        rec.save(path)
        (path / "metrics.json").write_text(json.dumps(result.to_json(), indent=1, default=json_default))
    return result
