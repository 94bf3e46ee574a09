"""The LEADER-style teacher behind the shared :class:`~kgrec.models.base.Recommender` interface
(``kgrec evaluate --model teacher``): its inputs (prompts, pooled graph vectors, code multi-hots), its
network and inference. Training loops: :mod:`kgrec.teacher.loop`; save/load: :mod:`kgrec.teacher.persist`;
the caches: :mod:`kgrec.teacher.cache`."""

from __future__ import annotations

import logging
import os
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
from scipy import sparse

from kgrec.cohort.base import Cohort
from kgrec.cohort.samples import Samples, multi_hot
from kgrec.errors import KgrecError, WorkspaceError
from kgrec.models.base import Recommender
from kgrec.progress import Every
from kgrec.teacher._lazy import model as _model
from kgrec.teacher._lazy import soft as _soft
from kgrec.teacher._lazy import torch
from kgrec.teacher import encodings as _enc
from kgrec.teacher.cache import _TOKENS, cohort_fingerprint, train_or_load
from kgrec.teacher.config import TeacherConfig, workspace_teacher_config
from kgrec.teacher.loop import TrainingLoop, code_rows, logits_in_chunks
from kgrec.teacher.persist import Persistence
from kgrec.teacher.prompts import PromptBuilder, token_counter

log = logging.getLogger(__name__)
GROUPS = ("diagnoses", "procedures", "history_drugs")  # kgrec.teacher.soft_prompt.GROUPS
KEY_PREFIX = {"diagnoses": "DiagnosisCode:", "procedures": "ProcedureCode:", "history_drugs": "Drug:"}


def _history_rows(cohort: Cohort, samples: Samples, n: int) -> list[list[int]]:
    return [list(h)[-n:] if n else [] for h in samples.history]


def _resolve_workspace(workspace) -> Path | None:
    if workspace is not None:
        return Path(workspace)
    env = os.environ.get("KGREC_WORKSPACE")
    return Path(env) if env else None



class TeacherRecommender(TrainingLoop, Persistence, Recommender):
    """LEADER-style teacher behind the shared recommender interface.

    Args:
        drug_vocab: the ATC3 vocabulary (output layer).
        config: a :class:`TeacherConfig` (keyword overrides are applied on top).
        workspace: where the graph embeddings live (default ``$KGREC_WORKSPACE``).
        progress: rich progress bars on stderr.
    """

    name = "teacher"
    uses_workspace = True  # the evaluation runner passes the workspace (graph embeddings)

    def __init__(self, drug_vocab: list[str], config: TeacherConfig | None = None, workspace: Path | str | None = None, progress: bool = False, cache: bool = True, **overrides):
        if not drug_vocab:
            raise KgrecError("empty drug vocabulary: the cohort has no mapped drugs, the teacher has nothing to predict")
        super().__init__(drug_vocab)
        self.workspace = _resolve_workspace(workspace)
        cfg = config or workspace_teacher_config(self.workspace)
        self.config = TeacherConfig.from_json({**cfg.to_json(), **overrides})
        self.config.validate()
        self.progress = progress
        self.cache = cache and self.workspace is not None
        self.net = None  # kgrec.teacher.model.TeacherModel once fitted or loaded
        self.log: list[dict] = []
        self.code_expansions: dict[str, dict[str, float]] = {}  # ground_codes: code -> {concept: weight}

    # ---------------- inputs ----------------
    def _setup_backbone(self) -> None:
        cfg = self.config
        self.model_path = _model.resolve_model_path(cfg.model)
        # bf16 on a GPU: load the frozen weights in bf16 too (PEFT keeps the adapters in fp32)
        dtype = torch.bfloat16 if cfg.mixed_precision == "bf16" and torch.cuda.is_available() and cfg.device != "cpu" else None
        self.backbone, self.tokenizer, self.causal = _model.load_backbone(cfg.model, dtype=dtype)
        self.encoding_store = None
        if self._cached_backbone():  # frozen, no soft prompt: states by prompt content (kgrec.teacher.encodings)
            from kgrec.embed.device import resolve_device
            from kgrec.teacher import encodings

            dev = resolve_device(cfg.device)
            dt = str(next(self.backbone.parameters()).dtype).removeprefix("torch.")
            dt += f"+autocast-{cfg.mixed_precision}" if cfg.mixed_precision != "no" and dev != "cpu" else ""
            self.encoding_store = encodings.EncodingStore(encodings.backbone_settings(self.model_path, self.causal, dt, dev))
        max_pos = getattr(self.backbone.config, "max_position_embeddings", None) or getattr(self.backbone.config, "n_positions", None)
        self.max_length = int(min(cfg.max_length, max_pos - self._soft_tokens()) if max_pos else cfg.max_length)

    def _soft_tokens(self) -> int:
        return self.config.soft_tokens if self.use_prompt else 0

    def _graph_table(self, cohort: Cohort) -> tuple[dict[str, np.ndarray], int]:
        """Fused vectors of every code the cohort uses (saved with the model, so loading needs no workspace)."""
        from kgrec.embed.vectors import load_entity_vectors

        if self.workspace is None:
            raise WorkspaceError("the graph prompt needs the workspace's embeddings: pass workspace (or set KGREC_WORKSPACE), or disable the graph prompt")
        ev = load_entity_vectors(self.workspace)
        keys = [KEY_PREFIX[g] + c for g, kind in zip(GROUPS, ("diagnosis", "procedure", "drug")) for c in cohort.vocab(kind)]
        vecs, found = ev.get(keys)
        if not found.any():
            raise WorkspaceError(f"none of the cohort's codes has a graph vector in {self.workspace}/embed: rebuild the graph and embeddings for this cohort")
        if not found.all():  # said and recorded: those codes are left out of the pooled graph inputs
            self.chosen["codes_without_graph_vector"] = {"n": int((~found).sum()), "of": int(len(found))}
            log.warning("teacher: %d of %d codes have no graph vector (left out of the graph prompt)", int((~found).sum()), len(found))
        if len(ev.parts) < 2:
            self.chosen["graph_degraded"] = f"only {'/'.join(ev.parts)} vectors in the workspace (kge and gnn expected)"
            log.warning("teacher: %s", self.chosen["graph_degraded"])
        return {k: vecs[i] for i, k in enumerate(keys) if found[i]}, ev.dim

    def _decide_graph(self, cohort: Cohort) -> None:
        """``use_graph``: graph vectors are loaded (soft prompt and/or head term); ``use_prompt``: soft prompt."""
        cfg = self.config
        self.graph_table, self.graph_dim = {}, 0
        want_prompt = bool(cfg.graph_prompt) and cfg.soft_tokens > 0
        self.use_graph = self.use_prompt = False
        if not (want_prompt or cfg.fuse_graph):
            return
        try:
            self.graph_table, self.graph_dim = self._graph_table(cohort)
        except WorkspaceError as exc:
            if cfg.graph_prompt == "auto" and not cfg.fuse_graph:
                log.warning("teacher: no graph prompt (%s)", exc)
                self.chosen["graph_prompt_fallback"] = f"no graph prompt: {exc}"  # said and recorded
                return
            raise
        self.use_graph, self.use_prompt = True, want_prompt

    def _token_ids(self, cohort: Cohort, samples: Samples) -> list[list[int]]:
        key = (cohort_fingerprint(cohort), self.model_path, self.config.history, self.max_length, self.config.profile)
        cache = _TOKENS.setdefault(key, {})
        missing = [i for i, r in enumerate(samples.visit_idx) if int(r) not in cache]
        if missing:
            builder = PromptBuilder(cohort.visits, cohort.names(), self.config.history, profile=self.config.profile)
            count = token_counter(self.tokenizer)
            progress = Every("teacher: tokenized prompts", len(missing))
            step = 4096
            for start in range(0, len(missing), step):
                chunk = missing[start:start + step]
                rows = [int(samples.visit_idx[i]) for i in chunk]
                for r, ids in zip(rows, builder.token_ids(rows, [samples.history[i] for i in chunk], self.max_length, count)):
                    cache[r] = ids
                progress(start + len(chunk))
        return [cache[int(r)] for r in samples.visit_idx]

    def _graph_inputs(self, cohort: Cohort, samples: Samples) -> np.ndarray | None:
        if not self.use_graph:
            return None
        drugs = cohort.visits["drugs"].tolist()
        groups = []
        for dx, px, hist in zip(samples.diagnoses, samples.procedures, _history_rows(cohort, samples, self.config.history)):
            groups.append((dx, px, sorted({d for r in hist for d in drugs[r]})))
        return _soft.pool_groups(groups, self.graph_table, self.graph_dim)

    def _codes(self, samples: Samples):
        if not self.config.fuse_codes:
            return None
        lists = [d + p for d, p in zip(samples.diagnoses, samples.procedures)]
        if not self.config.ground_codes:
            return multi_hot(lists, self.code_vocab)  # sparse: made dense a batch at a time (loop.code_rows)
        index = {c: j for j, c in enumerate(self.code_vocab)}
        rows, cols, vals = [], [], []
        for i, codes in enumerate(lists):
            best: dict[int, float] = {}
            for c in codes:
                for k, w in self._expand(c).items():
                    j = index.get(k)
                    if j is not None and w > best.get(j, 0.0):
                        best[j] = w
            rows += [i] * len(best)
            cols += list(best)
            vals += list(best.values())
        return sparse.csr_matrix((np.asarray(vals, np.float32), (rows, cols)), shape=(len(lists), len(self.code_vocab)))

    def _expand(self, code: str) -> dict[str, float]:
        """A code's graph concepts (ground_codes): saved with the model for the codes of the training
        cohort; others expanded through the workspace graph, or counted as ungrounded without one."""
        hit = self.code_expansions.get(code)
        if hit is None:
            if self.workspace is not None and (Path(self.workspace) / "graph" / "tables" / "nodes").is_dir():
                from kgrec.models.graph_logreg import workspace_expander

                hit = workspace_expander(self.workspace).expand(code)
            else:
                hit = {}
                self.chosen.setdefault("ungrounded_codes", 0)
                self.chosen["ungrounded_codes"] += 1
            self.code_expansions[code] = hit
        return hit

    def _inputs(self, cohort: Cohort, samples: Samples) -> dict:
        return {"ids": self._token_ids(cohort, samples), "graph": self._graph_inputs(cohort, samples), "codes": self._codes(samples)}

    # ---------------- network ----------------
    def _build(self, code_vocab: list[str], prior: np.ndarray | None) -> None:
        cfg = self.config
        self.code_vocab = code_vocab
        backbone = self.backbone
        self.lora_targets: list[str] = []
        if cfg.lora_r > 0:
            backbone, self.lora_targets = _model.add_lora(backbone, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_targets)
        else:
            for p in backbone.parameters():
                p.requires_grad_(False)
        self.net = _model.TeacherModel(
            backbone, self.causal, len(self.drug_vocab), self.graph_dim if self.use_prompt else 0, self._soft_tokens(),
            len(code_vocab) if cfg.fuse_codes else 0, cfg.dropout, cfg.projector_dim, self._graph_fuse_dim(),
        )
        if prior is not None:
            p = np.clip(prior, 1e-3, 1 - 1e-3)
            with torch.no_grad():
                self.net.head.bias.copy_(torch.tensor(np.log(p / (1 - p)), dtype=self.net.head.bias.dtype))

    def _graph_fuse_dim(self) -> int:
        return len(GROUPS) * (self.graph_dim + 1) if self.use_graph and self.config.fuse_graph else 0

    def _cached_backbone(self) -> bool:
        return self.config.lora_r == 0 and not self.use_prompt

    def _collate(self, inputs: dict, idx: np.ndarray, device) -> dict:
        ids = [inputs["ids"][i] for i in idx]
        width = max(map(len, ids))
        pad = self.tokenizer.pad_token_id
        x = torch.full((len(ids), width), pad, dtype=torch.long)
        m = torch.zeros((len(ids), width), dtype=torch.long)
        for r, t in enumerate(ids):
            x[r, :len(t)] = torch.tensor(t)
            m[r, :len(t)] = 1
        out = {"input_ids": x.to(device), "attention_mask": m.to(device)}
        if inputs["graph"] is not None:
            out["graph"] = torch.from_numpy(inputs["graph"][idx]).to(device)
        if inputs["codes"] is not None:
            out["codes"] = code_rows(inputs["codes"], idx).to(device)
        return out

    def _encode_all(self, inputs: dict, device, autocast=None) -> torch.Tensor:
        with torch.no_grad():
            return self._encode_all_nograd(inputs, device, autocast)

    def _encode_all_nograd(self, inputs: dict, device, autocast=None) -> torch.Tensor:
        net = self.net
        was = net.training
        net.eval()
        n = len(inputs["ids"])
        pooled = torch.zeros((n, net.hidden), dtype=torch.float32)
        lengths = [len(t) for t in inputs["ids"]]
        tick, done = Every("teacher: encoded prompts", n), 0
        for idx in self._batches(lengths, self.config.eval_batch_size, None):
            b = self._collate(inputs, idx, device)
            with autocast() if autocast else nullcontext():
                pooled[torch.from_numpy(idx)] = net.encode(b["input_ids"], b["attention_mask"], b.get("graph") if self.use_prompt else None).float().cpu()
            done += len(idx)
            tick(done)
        net.train(was)
        return pooled

    def _pooled(self, cohort: Cohort, samples: Samples, inputs: dict, device, autocast=None) -> torch.Tensor:
        """Pooled states; with a frozen backbone and no soft prompt, from the encoding store (by prompt
        content, shared across fits, cohorts and runs: :mod:`kgrec.teacher.encodings`), each distinct
        prompt encoded once."""
        store = getattr(self, "encoding_store", None)
        if not self._cached_backbone() or store is None:
            return self._encode_all(inputs, device, autocast)
        hashes = [_enc.token_hash(t) for t in inputs["ids"]]
        got = store.get(hashes)
        todo = list(dict.fromkeys(h for h, g in zip(hashes, got) if g is None))
        if todo:
            first = {h: i for i, h in reversed(list(enumerate(hashes)))}
            sub = {"ids": [inputs["ids"][first[h]] for h in todo], "graph": None, "codes": None}
            t0 = time.perf_counter()
            states = self._encode_all(sub, device, autocast).numpy()
            self.chosen["encoded_visits_per_second"] = round(len(todo) / max(time.perf_counter() - t0, 1e-9), 1)
            store.put(todo, states)
            fresh = dict(zip(todo, states))
            got = [g if g is not None else fresh[h] for h, g in zip(hashes, got)]
        if store.notes:
            self.chosen["encoding_cache"] = dict(store.notes)
        return torch.from_numpy(np.stack(got).astype(np.float32)) if got else torch.zeros((0, self.net.hidden))

    # ---------------- Recommender ----------------
    def fit(self, cohort: Cohort, train: Samples, val: Samples) -> TeacherRecommender:
        """Train on ``train`` (early stopping on ``val``). With a workspace (``cache=True``), the teacher for
        the same cohort, patients, config and embeddings is reused from ``<workspace>/teacher/<key>/``
        (see :func:`kgrec.teacher.cache.train_or_load`): K-fold CV of teacher and student trains K teachers, not 2K."""
        if len(train) == 0:
            raise KgrecError("the teacher has no training visits")
        if self.cache:
            trained, _ = train_or_load(type(self), self.workspace, cohort, train, val, self.config, self.progress, self.drug_vocab)
            keep = {"workspace": self.workspace, "progress": self.progress, "cache": self.cache}
            self.__dict__.update(trained.__dict__)
            self.__dict__.update(keep)
            return self
        return self._fit(cohort, train, val)

    def _fit(self, cohort: Cohort, train: Samples, val: Samples) -> TeacherRecommender:
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        from kgrec.cohort.ddi import ddi_matrix

        cfg = self.config
        t_start = time.perf_counter()
        set_seed(cfg.seed)
        self._decide_graph(cohort)
        self._setup_backbone()
        y_train = self.targets(train)
        code_vocab = sorted({c for d, p in zip(train.diagnoses, train.procedures) for c in d + p})
        if cfg.fuse_codes and cfg.ground_codes:
            from kgrec.models.graph_logreg import workspace_expander

            if self.workspace is None:
                raise WorkspaceError("the teacher's graph-grounded codes (ground_codes) need the workspace graph: pass workspace")
            ex = workspace_expander(self.workspace, cohort)
            self.code_expansions = {c: ex.expand(c) for col in ("diagnoses", "procedures") for cs in cohort.visits[col] for c in cs}
            code_vocab = sorted({k for c in code_vocab for k in self.code_expansions[c]})
            self.chosen["n_concepts"] = len(code_vocab)
        self._build(code_vocab, y_train.mean(0))
        from kgrec.embed.device import resolve_device

        device = resolve_device(cfg.device)  # "cuda" without a GPU is an error, never a silent CPU run
        acc = Accelerator(cpu=device == "cpu", mixed_precision=cfg.mixed_precision if device != "cpu" else "no")
        if device == "cpu" and cfg.mixed_precision != "no":
            log.warning("teacher: mixed precision %s needs a GPU; training in fp32 on the CPU", cfg.mixed_precision)
            self.chosen["mixed_precision_note"] = f"{cfg.mixed_precision} asked for, fp32 used: no GPU"
        self.chosen["device"] = str(acc.device)
        self.accelerator = acc
        dev = acc.device
        tr_in, va_in = self._inputs(cohort, train), self._inputs(cohort, val)
        y_tr = torch.from_numpy(y_train.astype(np.float32))
        y_val = self.targets(val)
        ddi = None
        if cfg.ddi_weight > 0 and cohort.ddi is not None:
            ddi = torch.from_numpy(ddi_matrix(cohort.ddi, self.drug_vocab).astype(np.float32)).to(dev)
        self.chosen.update(graph_prompt=self.use_prompt, graph_head=self._graph_fuse_dim() > 0, lora_targets=self.lora_targets, max_length=self.max_length)
        if self._cached_backbone():
            self._fit_head(cohort, train, val, tr_in, va_in, y_tr, y_val, ddi, acc)
        else:
            self._fit_full(tr_in, va_in, y_tr, y_val, ddi, acc)
        self.chosen["fit_seconds"] = round(time.perf_counter() - t_start, 2)
        return self

    def _logits(self, inputs: dict, acc=None) -> torch.Tensor:
        return self._forward_all(inputs, acc)[1]

    def _forward_all(self, inputs: dict, acc=None, cohort: Cohort | None = None, samples: Samples | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        device = acc.device if acc is not None else next(self.net.parameters()).device
        autocast = acc.autocast if acc is not None else None
        if cohort is not None and self._cached_backbone():
            pooled = self._pooled(cohort, samples, inputs, device, autocast)
        else:
            pooled = self._encode_all(inputs, device, autocast)
        self.net.eval()
        with torch.no_grad():
            logits = logits_in_chunks(self.net, pooled, inputs["codes"], inputs["graph"], device).float().cpu()
        return pooled, logits

    def _check_fitted(self) -> None:
        if self.net is None:
            raise KgrecError("the teacher is not trained: call fit() or load() first")

    def features(self, cohort: Cohort, samples: Samples) -> tuple[np.ndarray, np.ndarray]:
        """``(pooled hidden states (n, H), logits (n, |vocab|))`` for ``samples``."""
        self._check_fitted()
        pooled, logits = self._forward_all(self._inputs(cohort, samples), getattr(self, "accelerator", None), cohort, samples)
        return pooled.numpy(), logits.numpy()

    def predict_proba(self, cohort: Cohort, samples: Samples) -> np.ndarray:
        self._check_fitted()
        if len(samples) == 0:
            return np.zeros((0, len(self.drug_vocab)))
        return 1.0 / (1.0 + np.exp(-self.features(cohort, samples)[1].astype(np.float64)))
