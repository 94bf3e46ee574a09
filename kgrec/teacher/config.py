"""The teacher's settings (:class:`TeacherConfig`, CLI options map 1:1) and where a workspace keeps
its trained teacher."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from kgrec.errors import KgrecError

FORMAT_VERSION = 1
DEFAULT_MODEL = "minilm"  # kgrec.teacher.model.DEFAULT_MODEL
# the teacher `kgrec run` trains on a CPU, and the names view of `site-ensemble-names`: frozen backbone, a
# linear code term beside it, no graph soft prompt (measured in docs/teacher.md)
CPU_TEACHER = {"lora_r": 0, "fuse_codes": True, "graph_prompt": False}


@dataclass
class TeacherConfig:
    """Teacher settings. Defaults are sized for a CPU and the demo cohorts (see docs/teacher.md).

    Attributes:
        model: backbone folder or Hugging Face id (``minilm``: the offline all-MiniLM-L6-v2).
        lora_r: LoRA rank; 0 freezes the backbone (no adapter; pooled states are then cached when no
            soft prompt is used).
        lora_targets: module-name suffixes for LoRA (default: found for the architecture).
        graph_prompt: fused graph vectors as ``soft_tokens`` virtual tokens; ``"auto"`` uses them when
            the workspace has embeddings and silently skips them otherwise (``kgrec evaluate``).
        history: earlier visits shown in the prompt (the last N).
        max_length: token budget of the text (virtual tokens come on top).
        fuse_codes: add a linear term over the visit's diagnosis/procedure multi-hot to the logits (the
            logistic-regression features; "wide & deep").
        ground_codes: that term reads each code's graph concepts (:mod:`kgrec.graph.expand`: its
            category, GEM partner in the other ICD version, Disease Ontology terms and their ancestors,
            weighted by hop) instead of its id, so a code of another system or site lands on concepts seen
            in training (``kgrec transfer``); needs ``fuse_codes`` and the workspace graph.
        fuse_graph: add a linear term over the pooled graph vectors to the logits (the graph at the head;
            cheap: works with cached backbone states, unlike the soft prompt).
        ddi_weight: weight of the expected-DDI penalty (0: off).
        head_epochs: epochs of the head-only training on cached states (frozen backbone, no soft prompt).
        patience: epochs without a better validation PRAUC before stopping.
        mixed_precision: ``no``, ``bf16`` or ``fp16`` (GPU), passed to ``Accelerator``.
        profile: start each prompt with the patient's profile line (age, sex, admission fields;
            :func:`kgrec.teacher.prompts.profile_line`), LEADER's profile prompt.
        device: ``auto`` (a GPU where one is visible), ``cpu`` or ``cuda``; the one used is recorded.
    """

    model: str = DEFAULT_MODEL
    epochs: int = 3
    lr: float = 1e-3
    head_lr: float = 1e-2
    weight_decay: float = 0.01
    lora_r: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.1
    lora_targets: list[str] | None = None
    soft_tokens: int = 4
    graph_prompt: bool | str = True
    history: int = 3
    max_length: int = 256
    batch_size: int = 8
    eval_batch_size: int = 64
    patience: int = 2
    head_epochs: int = 200
    ddi_weight: float = 0.0
    fuse_codes: bool = False
    ground_codes: bool = False
    fuse_graph: bool = False
    dropout: float = 0.1
    projector_dim: int = 256
    mixed_precision: str = "no"
    profile: bool = False
    device: str = "auto"
    seed: int = 42

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> TeacherConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def validate(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise KgrecError(f"teacher: {name} must be ≥ 1 (got {getattr(self, name)})")
        for name in ("lora_r", "soft_tokens", "history", "patience"):
            if getattr(self, name) < 0:
                raise KgrecError(f"teacher: {name} must be ≥ 0 (got {getattr(self, name)})")
        if not 0 <= self.lora_dropout < 1 or not 0 <= self.dropout < 1:
            raise KgrecError("teacher: dropouts must lie in [0, 1)")
        if self.ground_codes and not self.fuse_codes:
            raise KgrecError("teacher: ground_codes grounds the fused code term: set fuse_codes as well")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise KgrecError(f"teacher: mixed_precision must be no, bf16 or fp16 (got {self.mixed_precision!r})")
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise KgrecError(f"teacher: device must be auto, cpu or cuda (got {self.device!r})")



def teacher_dir(workspace: Path | str) -> Path:
    return Path(workspace) / "teacher"


def workspace_teacher_config(workspace: Path | str | None) -> TeacherConfig:
    """The settings of the workspace's trained teacher (``kgrec train --stage teacher``), so that
    ``kgrec evaluate -m teacher`` and the student's distillation use the teacher the user chose; the
    default (graph prompt when the workspace has embeddings) when none was trained."""
    if workspace is not None and (teacher_dir(workspace) / "config.json").exists():
        meta = json.loads((teacher_dir(workspace) / "config.json").read_text())
        return TeacherConfig.from_json(meta["config"])
    return TeacherConfig(graph_prompt="auto")



def json_default(o):
    """``json.dumps`` fallback for numpy scalars and arrays."""
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)
