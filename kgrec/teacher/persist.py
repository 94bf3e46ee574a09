"""Saving and loading a trained teacher (:class:`Persistence`, mixed into
:class:`~kgrec.teacher.recommender.TeacherRecommender`): safetensors + JSON, never a pickle."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np

from kgrec.errors import WorkspaceError
from kgrec.teacher._lazy import model as _model
from kgrec.teacher._lazy import torch
from kgrec.teacher.config import FORMAT_VERSION, TeacherConfig, json_default


class Persistence:
    """``save``/``load`` round-trip to identical predictions."""

    # ---------------- persistence ----------------
    def save(self, folder: Path | str) -> Path:
        """``config.json``, ``adapter/`` (PEFT, when LoRA), ``weights.safetensors`` (head, projector, wide),
        ``graph_vectors.safetensors`` (the cohort codes' fused vectors, when the graph prompt is on)."""
        from safetensors.torch import save_file

        self._check_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in ("adapter", "weights.safetensors", "graph_vectors.safetensors", "config.json"):
            p = folder / stale
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        net = self.net
        if self.config.lora_r > 0:
            net.backbone.save_pretrained(folder / "adapter")
        own = {n: p.detach().cpu().contiguous() for n, p in net.state_dict().items() if n.startswith(("head.", "wide.", "graph_wide.", "projector."))}
        save_file(own, str(folder / "weights.safetensors"))
        graph_keys = sorted(self.graph_table) if self.use_graph else []
        if graph_keys:
            save_file({"vectors": torch.from_numpy(np.stack([self.graph_table[k] for k in graph_keys]).astype(np.float32))}, str(folder / "graph_vectors.safetensors"))
        meta = {
            "format": FORMAT_VERSION, "config": self.config.to_json(), "model_path": self.model_path, "causal": self.causal,
            "drug_vocab": self.drug_vocab, "code_vocab": self.code_vocab, "use_graph": self.use_graph, "use_prompt": self.use_prompt, "graph_dim": self.graph_dim,
            "graph_keys": graph_keys, "lora_targets": self.lora_targets, "max_length": self.max_length,
            "threshold": self.threshold, "chosen": self.chosen, "log": self.log,
            "code_expansions": self.code_expansions if self.config.ground_codes else None,
        }
        tmp = folder / "config.json.tmp"
        tmp.write_text(json.dumps(meta, indent=1, default=json_default))
        tmp.replace(folder / "config.json")
        return folder

    @classmethod
    def load(cls, folder: Path | str, progress: bool = False):
        from safetensors.torch import load_file

        folder = Path(folder)
        if not (folder / "config.json").exists():
            raise WorkspaceError(f"no trained teacher in {folder}: run `kgrec train --stage teacher` first")
        meta = json.loads((folder / "config.json").read_text())
        cfg = TeacherConfig.from_json(meta["config"])
        self = cls(meta["drug_vocab"], cfg, progress=progress)
        cfg.model = meta["model_path"] if Path(meta["model_path"]).exists() else cfg.model
        self.use_graph, self.use_prompt, self.graph_dim = bool(meta["use_graph"]), bool(meta["use_prompt"]), int(meta["graph_dim"])
        self.graph_table = {}
        if self.use_graph:
            vecs = load_file(str(folder / "graph_vectors.safetensors"))["vectors"].numpy()
            self.graph_table = dict(zip(meta["graph_keys"], vecs))
        self._setup_backbone()
        self.max_length = int(meta["max_length"])
        self.code_vocab = meta["code_vocab"]
        self.code_expansions = dict(meta.get("code_expansions") or {})
        backbone = self.backbone
        self.lora_targets = meta["lora_targets"]
        if cfg.lora_r > 0:
            from peft import PeftModel

            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
                backbone = PeftModel.from_pretrained(backbone, str(folder / "adapter"))
        for p in backbone.parameters():
            p.requires_grad_(False)
        self.net = _model.TeacherModel(backbone, self.causal, len(self.drug_vocab), self.graph_dim if self.use_prompt else 0, self._soft_tokens(),
                                len(self.code_vocab) if cfg.fuse_codes else 0, cfg.dropout, cfg.projector_dim, self._graph_fuse_dim())
        missing, unexpected = _model.load_parameters(self.net, load_file(str(folder / "weights.safetensors")))
        if unexpected or any(k.startswith(("head.", "wide.", "graph_wide.", "projector.")) for k in missing):
            raise WorkspaceError(f"{folder}/weights.safetensors does not match the saved config (missing {missing[:3]}, unexpected {unexpected[:3]})")
        self.net.eval()
        self.threshold = float(meta.get("threshold", 0.5))
        self.chosen = dict(meta.get("chosen", {}))
        self.log = list(meta.get("log", []))
        return self
