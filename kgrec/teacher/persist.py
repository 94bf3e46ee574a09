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
        """``config.json``, ``adapter.<gen>/`` (PEFT, when LoRA), ``weights.<gen>.safetensors`` (head,
        projector, wide), ``graph_vectors.<gen>.safetensors`` (the cohort codes' fused vectors, when the
        graph prompt is on). The weights are written under a new generation name first; replacing
        ``config.json``, which names them, is the one commit point, and only then are the previous
        generation's files removed: a save killed at any moment leaves the previous teacher loadable
        (the folder also holds the teacher caches, so it is not swapped as a whole)."""
        import os
        import uuid

        from safetensors.torch import save_file

        from kgrec.fsatomic import replace_file, umask_modes

        self._check_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        gen = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        files = {"weights": f"weights.{gen}.safetensors"}
        net = self.net
        if self.config.lora_r > 0:
            files["adapter"] = f"adapter.{gen}"
            net.backbone.save_pretrained(folder / files["adapter"])
        own = {n: p.detach().cpu().contiguous() for n, p in net.state_dict().items() if n.startswith(("head.", "wide.", "graph_wide.", "projector."))}
        save_file(own, str(folder / files["weights"]))
        graph_keys = sorted(self.graph_table) if self.use_graph else []
        if graph_keys:
            files["graph_vectors"] = f"graph_vectors.{gen}.safetensors"
            save_file({"vectors": torch.from_numpy(np.stack([self.graph_table[k] for k in graph_keys]).astype(np.float32))}, str(folder / files["graph_vectors"]))
        meta = {
            "format": FORMAT_VERSION, "config": self.config.to_json(), "model_path": self.model_path, "causal": self.causal,
            "drug_vocab": self.drug_vocab, "code_vocab": self.code_vocab, "use_graph": self.use_graph, "use_prompt": self.use_prompt, "graph_dim": self.graph_dim,
            "graph_keys": graph_keys, "lora_targets": self.lora_targets, "max_length": self.max_length,
            "threshold": self.threshold, "chosen": self.chosen, "log": self.log,
            "code_expansions": self.code_expansions if self.config.ground_codes else None, "files": files,
        }
        tmp = folder / f".config.json.tmp-{gen}"
        try:
            for f in files.values():
                umask_modes(folder / f)
            tmp.write_text(json.dumps(meta, indent=1, default=json_default))
            replace_file(tmp, folder / "config.json")  # the commit point
        except BaseException:
            tmp.unlink(missing_ok=True)
            for f in files.values():
                shutil.rmtree(folder / f, ignore_errors=True) if (folder / f).is_dir() else (folder / f).unlink(missing_ok=True)
            raise
        keep = set(files.values())
        for p in folder.iterdir():  # earlier generations (and the unversioned names of older kgrec)
            base = p.name
            stale = (base.startswith(("weights.", "graph_vectors.")) and base.endswith(".safetensors")) or base == "adapter" or base.startswith("adapter.")
            if stale and base not in keep:
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        return folder

    @classmethod
    def load(cls, folder: Path | str, progress: bool = False):
        from safetensors.torch import load_file

        folder = Path(folder)
        if not (folder / "config.json").exists():
            raise WorkspaceError(f"no trained teacher in {folder}: run `kgrec train --stage teacher` first")
        meta = json.loads((folder / "config.json").read_text())
        files = {"weights": "weights.safetensors", "adapter": "adapter", "graph_vectors": "graph_vectors.safetensors", **(meta.get("files") or {})}
        cfg = TeacherConfig.from_json(meta["config"])
        self = cls(meta["drug_vocab"], cfg, progress=progress)
        cfg.model = meta["model_path"] if Path(meta["model_path"]).exists() else cfg.model
        self.use_graph, self.use_prompt, self.graph_dim = bool(meta["use_graph"]), bool(meta["use_prompt"]), int(meta["graph_dim"])
        self.graph_table = {}
        if self.use_graph:
            vecs = load_file(str(folder / files["graph_vectors"]))["vectors"].numpy()
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
                backbone = PeftModel.from_pretrained(backbone, str(folder / files["adapter"]))
        for p in backbone.parameters():
            p.requires_grad_(False)
        self.net = _model.TeacherModel(backbone, self.causal, len(self.drug_vocab), self.graph_dim if self.use_prompt else 0, self._soft_tokens(),
                                len(self.code_vocab) if cfg.fuse_codes else 0, cfg.dropout, cfg.projector_dim, self._graph_fuse_dim())
        missing, unexpected = _model.load_parameters(self.net, load_file(str(folder / files["weights"])))
        if unexpected or any(k.startswith(("head.", "wide.", "graph_wide.", "projector.")) for k in missing):
            raise WorkspaceError(f"{folder / files['weights']} does not match the saved config (missing {missing[:3]}, unexpected {unexpected[:3]})")
        self.net.eval()
        self.threshold = float(meta.get("threshold", 0.5))
        self.chosen = dict(meta.get("chosen", {}))
        self.log = list(meta.get("log", []))
        return self
