"""Training, inference, saving and the feature cache of the LEADER-style teacher.

* :class:`TeacherConfig`: every setting (CLI options map 1:1).
* :class:`TeacherRecommender`: the :class:`~kgrec.models.base.Recommender` (``kgrec evaluate --model
  teacher``); ``fit`` trains through ``accelerate`` (CPU, one GPU, or ``accelerate launch``), early-stops
  on validation PRAUC, keeps the best epoch; ``save``/``load`` round-trip to identical predictions.
* :func:`teacher_features`: the student's entry point: train (or load from a cache keyed by the training
  patients + config) and dump the pooled hidden state of every target visit.
* :func:`train_on_split`: ``kgrec train --stage teacher``.

What does not change between epochs is computed once: the tokenised prompts (per cohort row, shared by
every fold of a CV run), the pooled graph vectors, and, when the backbone is frozen (``lora_r=0``) and
no soft prompt is used, the backbone's pooled hidden states (then only the head trains).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from kgrec.cohort.base import Cohort
from kgrec.cohort.samples import Samples, build_samples, multi_hot
from kgrec.errors import KgrecError, WorkspaceError
from kgrec.models.base import Recommender
from kgrec.teacher.prompts import PromptBuilder, token_counter

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
DEFAULT_MODEL = "minilm"  # kgrec.teacher.model.DEFAULT_MODEL
GROUPS = ("diagnoses", "procedures", "history_drugs")  # kgrec.teacher.soft_prompt.GROUPS
KEY_PREFIX = {"diagnoses": "DiagnosisCode:", "procedures": "ProcedureCode:", "history_drugs": "Drug:"}


class _Lazy:
    """Imports a module on first attribute access: the model registry (and so every `kgrec` command)
    imports this file, and torch/transformers take seconds to import."""

    def __init__(self, module: str):
        self._module, self._mod = module, None

    def __getattr__(self, name: str):
        if self._mod is None:
            import importlib

            self._mod = importlib.import_module(self._module)
        return getattr(self._mod, name)


torch = _Lazy("torch")
_model = _Lazy("kgrec.teacher.model")
_soft = _Lazy("kgrec.teacher.soft_prompt")


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
        fuse_graph: add a linear term over the pooled graph vectors to the logits (the graph at the head;
            cheap: works with cached backbone states, unlike the soft prompt).
        ddi_weight: weight of the expected-DDI penalty (0: off).
        head_epochs: epochs of the head-only training on cached states (frozen backbone, no soft prompt).
        patience: epochs without a better validation PRAUC before stopping.
        mixed_precision: ``no``, ``bf16`` or ``fp16`` (GPU), passed to ``Accelerator``.
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
    fuse_graph: bool = False
    dropout: float = 0.1
    projector_dim: int = 256
    mixed_precision: str = "no"
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
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise KgrecError(f"teacher: mixed_precision must be no, bf16 or fp16 (got {self.mixed_precision!r})")


# ---- per-cohort caches shared by every fold / model of a run ----
_TOKENS: dict[tuple, dict[int, list[int]]] = {}
_POOLED: dict[tuple, dict[int, np.ndarray]] = {}


@contextmanager
def no_state_cache():
    """Set the in-memory token and backbone-state caches aside for the duration of a block, so that a
    timed prediction tokenises and encodes its visits as it would for new patients; the caches are put
    back afterwards."""
    saved = [(c, dict(c)) for c in (_TOKENS, _POOLED)]
    for c, _ in saved:
        c.clear()
    try:
        yield
    finally:
        for c, kept in saved:
            c.clear()
            c.update(kept)


def cohort_fingerprint(cohort: Cohort) -> str:
    v = cohort.visits
    h = hashlib.sha1()
    for col in ("visit_id", "patient_id"):
        h.update("\x1f".join(map(str, v[col])).encode())
    for col in ("diagnoses", "procedures", "drugs"):
        h.update("\x1e".join(",".join(x) for x in v[col]).encode())
    return h.hexdigest()[:16]


def _history_rows(cohort: Cohort, samples: Samples, n: int) -> list[list[int]]:
    return [list(h)[-n:] if n else [] for h in samples.history]


def _resolve_workspace(workspace) -> Path | None:
    if workspace is not None:
        return Path(workspace)
    env = os.environ.get("KGREC_WORKSPACE")
    return Path(env) if env else None


class TeacherRecommender(Recommender):
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

    # ---------------- inputs ----------------
    def _setup_backbone(self) -> None:
        cfg = self.config
        self.model_path = _model.resolve_model_path(cfg.model)
        # bf16 on a GPU: load the frozen weights in bf16 too (PEFT keeps the adapters in fp32)
        dtype = torch.bfloat16 if cfg.mixed_precision == "bf16" and torch.cuda.is_available() else None
        self.backbone, self.tokenizer, self.causal = _model.load_backbone(cfg.model, dtype=dtype)
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
                return
            raise
        self.use_graph, self.use_prompt = True, want_prompt

    def _token_ids(self, cohort: Cohort, samples: Samples) -> list[list[int]]:
        key = (cohort_fingerprint(cohort), self.model_path, self.config.history, self.max_length)
        cache = _TOKENS.setdefault(key, {})
        missing = [i for i, r in enumerate(samples.visit_idx) if int(r) not in cache]
        if missing:
            builder = PromptBuilder(cohort.visits, cohort.names(), self.config.history)
            count = token_counter(self.tokenizer)
            for i in missing:
                p = builder.prompt(int(samples.visit_idx[i]), samples.history[i], self.max_length, count)
                ids = self.tokenizer(p.text, truncation=True, max_length=self.max_length)["input_ids"]
                cache[int(samples.visit_idx[i])] = ids
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
        return multi_hot([d + p for d, p in zip(samples.diagnoses, samples.procedures)], self.code_vocab).toarray()

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

    def _batches(self, lengths: Sequence[int], batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
        """Length-bucketed batches (little padding); shuffled when ``rng`` is given."""
        n = len(lengths)
        order = rng.permutation(n) if rng is not None else np.arange(n)
        chunk = batch_size * 8
        batches = []
        for s in range(0, n, chunk):
            part = order[s:s + chunk]
            part = part[np.argsort([lengths[i] for i in part], kind="stable")]
            batches += [part[j:j + batch_size] for j in range(0, len(part), batch_size)]
        if rng is not None:
            rng.shuffle(batches)
        return batches

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
            out["codes"] = torch.from_numpy(inputs["codes"][idx]).to(device)
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
        for idx in self._batches(lengths, self.config.eval_batch_size, None):
            b = self._collate(inputs, idx, device)
            with autocast() if autocast else _nullcontext():
                pooled[torch.from_numpy(idx)] = net.encode(b["input_ids"], b["attention_mask"], b.get("graph") if self.use_prompt else None).float().cpu()
        net.train(was)
        return pooled

    def _pooled(self, cohort: Cohort, samples: Samples, inputs: dict, device, autocast=None) -> torch.Tensor:
        """Pooled states; with a frozen backbone and no soft prompt, cached per cohort row across fits."""
        if not self._cached_backbone():
            return self._encode_all(inputs, device, autocast)
        key = (cohort_fingerprint(cohort), self.model_path, self.config.history, self.max_length)
        cache = _POOLED.setdefault(key, {})
        rows = [int(r) for r in samples.visit_idx]
        missing = [i for i, r in enumerate(rows) if r not in cache]
        if missing:
            sub = {"ids": [inputs["ids"][i] for i in missing], "graph": None, "codes": None}
            states = self._encode_all(sub, device, autocast).numpy()
            for i, s in zip(missing, states):
                cache[rows[i]] = s
        return torch.from_numpy(np.stack([cache[r] for r in rows])) if rows else torch.zeros((0, self.net.hidden))

    # ---------------- Recommender ----------------
    def fit(self, cohort: Cohort, train: Samples, val: Samples) -> TeacherRecommender:
        """Train on ``train`` (early stopping on ``val``). With a workspace (``cache=True``), the teacher for
        the same cohort, patients, config and embeddings is reused from ``<workspace>/teacher/<key>/``
        (see :func:`cached_teacher`): K-fold CV of teacher and student trains K teachers, not 2K."""
        if len(train) == 0:
            raise KgrecError("the teacher has no training visits")
        if self.cache:
            trained, _ = cached_teacher(self.workspace, cohort, train, val, self.config, self.progress)
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
        self._build(code_vocab, y_train.mean(0))
        acc = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=cfg.mixed_precision)
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

    def _param_groups(self) -> list[dict]:
        head, body = [], []
        for n, p in self.net.named_parameters():
            if not p.requires_grad:
                continue
            (head if n.startswith(("head.", "wide.", "graph_wide.")) else body).append(p)
        groups = [{"params": head, "lr": self.config.head_lr}]
        if body:
            groups.append({"params": body, "lr": self.config.lr})
        return groups

    def _trainable_state(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in self.net.named_parameters() if p.requires_grad}

    def _val_prauc(self, logits: torch.Tensor, y_val: np.ndarray) -> float:
        return mean_average_precision(y_val, logits.float().numpy())

    def _progress(self, total: int, what: str):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        return Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=Console(stderr=True), disable=not self.progress, transient=False)

    def _fit_full(self, tr_in, va_in, y_tr, y_val, ddi, acc) -> None:
        cfg = self.config
        net = self.net
        opt = torch.optim.AdamW(self._param_groups(), weight_decay=cfg.weight_decay)
        net, opt = acc.prepare(net, opt)
        rng = np.random.default_rng(cfg.seed)
        lengths = [len(t) for t in tr_in["ids"]]
        best, best_state, bad = -math.inf, None, 0
        n_proc, rank = acc.num_processes, acc.process_index
        with self._progress(cfg.epochs, "teacher") as prog:
            for epoch in range(cfg.epochs):
                t0 = time.perf_counter()
                batches = self._batches(lengths, cfg.batch_size, rng)
                batches = batches[: len(batches) - len(batches) % n_proc or None][rank::n_proc] if n_proc > 1 else batches
                task = prog.add_task("", total=len(batches), info=f"epoch {epoch + 1}/{cfg.epochs}")
                net.train()
                total = 0.0
                for idx in batches:
                    b = self._collate(tr_in, idx, acc.device)
                    with acc.autocast():
                        logits, _ = net(b["input_ids"], b["attention_mask"], b.get("graph"), b.get("codes"))
                        loss = _model.bce_ddi_loss(logits, y_tr[torch.from_numpy(idx)].to(acc.device), ddi, cfg.ddi_weight)
                    acc.backward(loss)
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                    total += float(loss.detach()) * len(idx)
                    prog.update(task, advance=1)
                train_s = time.perf_counter() - t0
                entry = {"epoch": epoch + 1, "train_loss": total / max(1, sum(map(len, batches))), "train_seconds": round(train_s, 2)}
                if len(y_val):
                    self.net = acc.unwrap_model(net)
                    score = self._val_prauc(self._logits(va_in, acc), y_val)
                    entry["val_prauc"] = score
                    if score > best:
                        best, best_state, bad = score, self._trainable_state(), 0
                        self.chosen["best_epoch"] = epoch + 1
                    else:
                        bad += 1
                entry["seconds"] = round(time.perf_counter() - t0, 2)
                self.log.append(entry)
                prog.update(task, info=f"epoch {epoch + 1}: loss {entry['train_loss']:.4f}" + (f", val PRAUC {entry['val_prauc']:.4f}" if "val_prauc" in entry else ""))
                if len(y_val) and bad > cfg.patience - 1 and cfg.patience > 0:
                    break
        self.net = acc.unwrap_model(net)
        if best_state is not None:
            self.net.load_state_dict(best_state, strict=False)
        self.net.eval()
        self.chosen["epochs_run"] = len(self.log)
        self.chosen["seconds_per_epoch"] = round(float(np.mean([e["train_seconds"] for e in self.log])), 2)
        if best > -math.inf:
            self.chosen["val_prauc"] = round(best, 4)

    def _fit_head(self, cohort, train, val, tr_in, va_in, y_tr, y_val, ddi, acc) -> None:
        """Frozen backbone, no soft prompt: the pooled states are computed once; only the head trains."""
        cfg = self.config
        t0 = time.perf_counter()
        h_tr = self._pooled(cohort, train, tr_in, acc.device, acc.autocast)
        h_va = self._pooled(cohort, val, va_in, acc.device, acc.autocast)
        self.chosen["encode_seconds"] = round(time.perf_counter() - t0, 2)
        net = self.net
        net.to(acc.device)
        opt = torch.optim.AdamW(self._param_groups(), weight_decay=cfg.weight_decay)
        g = torch.Generator().manual_seed(cfg.seed)
        opt_t = lambda a: None if a is None else torch.from_numpy(a)  # noqa: E731
        c_tr, c_va, g_tr, g_va = opt_t(tr_in["codes"]), opt_t(va_in["codes"]), opt_t(tr_in["graph"]), opt_t(va_in["graph"])
        at = lambda t, i=None: None if t is None else (t if i is None else t[i]).to(acc.device)  # noqa: E731
        best, best_state, bad = -math.inf, None, 0
        patience = max(1, cfg.patience) * 10
        n = len(h_tr)
        for epoch in range(cfg.head_epochs):
            net.train()
            perm = torch.randperm(n, generator=g)
            for s in range(0, n, cfg.batch_size * 4):
                idx = perm[s:s + cfg.batch_size * 4]
                logits = net.logits(h_tr[idx].to(acc.device), at(c_tr, idx), at(g_tr, idx))
                loss = _model.bce_ddi_loss(logits, y_tr[idx].to(acc.device), ddi, cfg.ddi_weight)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
            if len(y_val):
                net.eval()
                with torch.no_grad():
                    score = self._val_prauc(net.logits(h_va.to(acc.device), at(c_va), at(g_va)).cpu(), y_val)
                if score > best:
                    best, best_state, bad = score, self._trainable_state(), 0
                    self.chosen["best_epoch"] = epoch + 1
                else:
                    bad += 1
                    if bad >= patience:
                        break
        if best_state is not None:
            net.load_state_dict(best_state, strict=False)
        net.eval()
        self.chosen["epochs_run"] = epoch + 1
        if best > -math.inf:
            self.chosen["val_prauc"] = round(best, 4)

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
            codes = torch.from_numpy(inputs["codes"]).to(device) if inputs["codes"] is not None else None
            graph = torch.from_numpy(inputs["graph"]).to(device) if inputs["graph"] is not None else None
            logits = self.net.logits(pooled.to(device), codes, graph).float().cpu()
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
        }
        tmp = folder / "config.json.tmp"
        tmp.write_text(json.dumps(meta, indent=1, default=_json_default))
        tmp.replace(folder / "config.json")
        return folder

    @classmethod
    def load(cls, folder: Path | str, progress: bool = False) -> TeacherRecommender:
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
        backbone = self.backbone
        self.lora_targets = meta["lora_targets"]
        if cfg.lora_r > 0:
            from peft import PeftModel

            import warnings

            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
                backbone = PeftModel.from_pretrained(backbone, str(folder / "adapter"))
        for p in backbone.parameters():
            p.requires_grad_(False)
        self.net = _model.TeacherModel(backbone, self.causal, len(self.drug_vocab), self.graph_dim if self.use_prompt else 0, self._soft_tokens(),
                                len(self.code_vocab) if cfg.fuse_codes else 0, cfg.dropout, cfg.projector_dim, self._graph_fuse_dim())
        missing, unexpected = self.net.load_state_dict(load_file(str(folder / "weights.safetensors")), strict=False)
        if unexpected or any(k.startswith(("head.", "wide.", "graph_wide.", "projector.")) for k in missing):
            raise WorkspaceError(f"{folder}/weights.safetensors does not match the saved config (missing {missing[:3]}, unexpected {unexpected[:3]})")
        self.net.eval()
        self.threshold = float(meta.get("threshold", 0.5))
        self.chosen = dict(meta.get("chosen", {}))
        self.log = list(meta.get("log", []))
        return self


def mean_average_precision(y: np.ndarray, scores: np.ndarray) -> float:
    """Mean per-visit average precision (the PRAUC of :mod:`kgrec.metrics`), vectorised for early stopping:
    it is evaluated every epoch. Equals scikit-learn's value when scores have no ties; visits without a
    positive count 0, as in :func:`kgrec.metrics.per_visit`."""
    y = np.asarray(y, dtype=bool)
    if y.size == 0:
        return 0.0
    order = np.argsort(-scores, axis=1, kind="stable")
    hits = np.take_along_axis(y, order, axis=1)
    tp = np.cumsum(hits, axis=1)
    prec = tp / np.arange(1, y.shape[1] + 1)
    n_pos = y.sum(1)
    ap = np.where(n_pos > 0, (prec * hits).sum(1) / np.maximum(n_pos, 1), 0.0)
    return float(ap.mean())


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return False


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


# ---------------- the student's feature cache ----------------
def features_key(cohort: Cohort, train: Samples, val: Samples, config: TeacherConfig, workspace: Path | str | None = None) -> str:
    """Hash of the cohort, the sorted training (and validation) patient ids, the config and (when the
    graph is used) the embedding files' sizes and times, so new embeddings give a new teacher."""
    payload = {
        "cohort": cohort_fingerprint(cohort), "train": sorted(set(map(str, train.patient_id))),
        "val": sorted(set(map(str, val.patient_id))), "config": config.to_json(), "format": FORMAT_VERSION,
    }
    if workspace is not None and ((config.graph_prompt and config.soft_tokens) or config.fuse_graph):
        from kgrec.embed.vectors import embed_dir

        payload["embed"] = [(p.parent.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(embed_dir(workspace).glob("*/vectors.safetensors"))]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


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


def cached_teacher(
    workspace: Path | str, cohort: Cohort, train: Samples, val: Samples, config: TeacherConfig | None = None, progress: bool = False,
) -> tuple[TeacherRecommender, Path]:
    """The teacher trained on ``train`` (early stopping and threshold on ``val``), from the cache
    ``<workspace>/teacher/<key>/`` (key: :func:`features_key`) or trained and cached there.

    The cache folder holds the model (``model/``), and the pooled states and logits of every target visit
    of the cohort: ``features.safetensors`` (``features`` (n, H) float32, ``logits`` (n, |vocab|)) with
    ``features.json`` (visit ids, drug vocab, config, patient counts). It is written to a temporary folder
    and renamed into place, so an interrupted run leaves no half-written cache.
    """
    from safetensors.numpy import save_file

    config = config or workspace_teacher_config(workspace)
    key = features_key(cohort, train, val, config, workspace)
    folder = teacher_dir(workspace) / key
    if (folder / "features.safetensors").exists() and (folder / "model" / "config.json").exists():
        return TeacherRecommender.load(folder / "model", progress=progress), folder
    vocab = cohort.vocab("drug")
    t0, c0 = time.perf_counter(), time.process_time()
    rec = TeacherRecommender(vocab, config, workspace=workspace, progress=progress, cache=False).fit(cohort, train, val)
    rec.tune_threshold(cohort, val)
    fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
    everything = build_samples(cohort)
    feats, logits = rec.features(cohort, everything)
    visit_ids = cohort.visits["visit_id"].to_numpy()[everything.visit_idx].astype(str)
    acc = getattr(rec, "accelerator", None)
    if acc is not None and not acc.is_main_process:  # `accelerate launch`: the main process writes the cache
        return rec, folder
    teacher_dir(workspace).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.tmp-", dir=teacher_dir(workspace)))
    try:
        rec.save(tmp / "model")
        save_file({"features": feats.astype(np.float32), "logits": logits.astype(np.float32)}, str(tmp / "features.safetensors"))
        (tmp / "features.json").write_text(json.dumps({
            "key": key, "visit_ids": visit_ids.tolist(), "drug_vocab": vocab, "config": config.to_json(),
            "n_train_patients": len(set(train.patient_id)), "n_val_patients": len(set(val.patient_id)),
            "hidden_size": int(feats.shape[1]), "chosen": rec.chosen,
            "train_seconds": round(fit_s, 3), "train_cpu_seconds": round(fit_cpu, 3),
        }, indent=1, default=_json_default))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return rec, folder


def teacher_features(
    workspace: Path | str,
    cohort: Cohort,
    train: Samples,
    val: Samples,
    config: TeacherConfig | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pooled teacher states for every target visit of ``cohort``: ``(features, logits, visit_ids)``,
    from the teacher :func:`cached_teacher` trains or finds (default config: :func:`workspace_teacher_config`)."""
    from safetensors.numpy import load_file

    config = config or workspace_teacher_config(workspace)
    folder = teacher_dir(workspace) / features_key(cohort, train, val, config, workspace)
    if not ((folder / "features.safetensors").exists() and (folder / "features.json").exists()):
        _, folder = cached_teacher(workspace, cohort, train, val, config, progress)
    meta = json.loads((folder / "features.json").read_text())
    arr = load_file(str(folder / "features.safetensors"))
    return arr["features"], arr["logits"], np.array(meta["visit_ids"], dtype=object)


# ---------------- kgrec train --stage teacher ----------------
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
    from kgrec.api import load_cohort
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
        (path / "metrics.json").write_text(json.dumps(result.to_json(), indent=1, default=_json_default))
    return result
