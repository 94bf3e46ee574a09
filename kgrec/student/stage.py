"""`kgrec train --stage distill`: the student on the saved split, distilled from the cached teacher."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from kgrec.errors import WorkspaceError
from kgrec.evaluation import fit_on_split
from kgrec.student import ddp
from kgrec.student.train import StudentConfig, StudentRecommender, workspace_teacher
from kgrec.fsatomic import replace_dir, temp_dir
from kgrec.workspace import cohort_key, graph_key, load_cohort


def student_dir(workspace: Path | str) -> Path:
    return Path(workspace) / "student"


@dataclass
class StudentTrainResult:
    path: Path
    val: dict
    test: dict
    chosen: dict
    fit_seconds: float
    config: dict

    def to_json(self) -> dict:
        return {"stage": "distill", "path": str(self.path), "validation": self.val, "test": self.test,
                "chosen": self.chosen, "train_seconds": self.fit_seconds, "config": self.config}


def train_on_split(workspace: Path | str, config: StudentConfig | None = None, teacher_config=None, progress: bool = True) -> StudentTrainResult:
    """Fit the student (teacher features from the workspace cache, trained there if absent), tune its
    threshold on val, test once, and save it to ``<workspace>/student/``."""
    config = config or StudentConfig()
    cohort = load_cohort(workspace)
    vocab = cohort.vocab("drug")
    if not vocab:
        raise WorkspaceError("the cohort has no mapped drugs: nothing to recommend")
    teacher = workspace_teacher(workspace, teacher_config) if (config.alpha > 0 or config.beta > 0) else None
    model = StudentRecommender(vocab, workspace if config.graph else None, config, teacher=teacher, progress=progress)
    out = fit_on_split(model, cohort)
    path = student_dir(workspace)
    res = StudentTrainResult(path, out["val"], out["test"], model.chosen, out["fit_seconds"], json.loads(json.dumps(config.__dict__)))
    ddp.barrier()
    if not ddp.is_main():  # `accelerate launch`: rank 0 alone writes the student
        return res
    tmp = temp_dir(path)  # written beside the old student and swapped in: a crash leaves the old one whole
    try:
        model.save(tmp)
        (tmp / "metrics.json").write_text(json.dumps(res.to_json(), indent=1, default=str))
        (tmp / "provenance.json").write_text(json.dumps(in_domain_provenance(workspace, cohort, config), indent=1))
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return res


def in_domain_provenance(workspace: Path | str, cohort, config: StudentConfig) -> dict:
    """What the in-domain student is (the deployed model without --pool): its teacher, the one site, keys."""
    import time

    from kgrec import __version__

    return {"model": "student", "teacher": "teacher" if (config.alpha > 0 or config.beta > 0) else None, "kgrec_version": __version__,
            "target": cohort.source, "sites": {cohort.source: {"workspace": str(workspace), "source": cohort.source, "cohort_key": cohort_key(workspace)}},
            "graph_key": graph_key(workspace) if config.graph else None, "drug_vocab": cohort.vocab("drug"),
            "trained_on": {"split": "the saved split (train; val chooses epoch and threshold)", "seed": (cohort.split or {}).get("seed")},
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
