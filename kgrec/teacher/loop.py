"""The teacher's training loops (:class:`TrainingLoop`, mixed into
:class:`~kgrec.teacher.recommender.TeacherRecommender`): full fine-tuning through ``accelerate`` (LoRA
and/or soft prompt; early stopping on validation PRAUC, best epoch kept) and head-only training on
cached backbone states (frozen backbone, no soft prompt)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np

from kgrec.progress import report
from kgrec.teacher._lazy import model as _model
from kgrec.teacher._lazy import torch

ROWS_AT_ONCE = 8192  # rows whose code columns are made dense at once (whole-set logits go in chunks of this)


def code_rows(codes, idx=None):
    """Rows ``idx`` (all: None) of the visits' sparse code matrix (the wide term's input), as a dense float
    tensor. The matrix stays sparse: dense, 77k training visits x 14k codes took 4.3 GB at 100k visits."""
    if codes is None:
        return None
    if idx is not None:
        codes = codes[np.asarray(idx)]
    return torch.from_numpy(codes.toarray())


def logits_in_chunks(net, pooled, codes, graph, device):
    """``net.logits`` of every row, ``ROWS_AT_ONCE`` rows at a time (below that, one call on every row)."""
    n = len(pooled)
    parts = []
    for s in range(0, max(n, 1), ROWS_AT_ONCE):
        e = min(n, s + ROWS_AT_ONCE)
        c = code_rows(codes, np.arange(s, e))
        g = None if graph is None else torch.as_tensor(graph[s:e]).to(device)
        parts.append(net.logits(pooled[s:e].to(device), None if c is None else c.to(device), g))
    return parts[0] if len(parts) == 1 else torch.cat(parts)


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



class TrainingLoop:
    """Epoch loops over the attributes :class:`~kgrec.teacher.recommender.TeacherRecommender` sets up
    (``config``, ``net``, ``log``, ``chosen``) and its input helpers (``_collate``, ``_logits``, ``_pooled``)."""

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
                report(f"teacher: epoch {epoch + 1}/{cfg.epochs}, loss {entry['train_loss']:.4f}" + (f", val PRAUC {entry['val_prauc']:.4f}" if "val_prauc" in entry else ""))
                if len(y_val) and bad > cfg.patience - 1 and cfg.patience > 0:
                    break
        self.net = acc.unwrap_model(net)
        if best_state is not None:
            _model.load_parameters(self.net, best_state)
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
        c_tr, c_va, g_tr, g_va = tr_in["codes"], va_in["codes"], opt_t(tr_in["graph"]), opt_t(va_in["graph"])
        at = lambda t, i=None: None if t is None else (t if i is None else t[i]).to(acc.device)  # noqa: E731
        codes_at = lambda c, i: None if c is None else code_rows(c, i).to(acc.device)  # noqa: E731
        best, best_state, bad = -math.inf, None, 0
        patience = max(1, cfg.patience) * 10
        n = len(h_tr)
        for epoch in range(cfg.head_epochs):
            net.train()
            perm = torch.randperm(n, generator=g)
            for s in range(0, n, cfg.batch_size * 4):
                idx = perm[s:s + cfg.batch_size * 4]
                logits = net.logits(h_tr[idx].to(acc.device), codes_at(c_tr, idx.numpy()), at(g_tr, idx))
                loss = _model.bce_ddi_loss(logits, y_tr[idx].to(acc.device), ddi, cfg.ddi_weight)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
            report(f"teacher head: epoch {epoch + 1}/{cfg.head_epochs}")
            if len(y_val):
                net.eval()
                with torch.no_grad():
                    score = self._val_prauc(logits_in_chunks(net, h_va, c_va, g_va, acc.device).cpu(), y_val)
                if score > best:
                    best, best_state, bad = score, self._trainable_state(), 0
                    self.chosen["best_epoch"] = epoch + 1
                else:
                    bad += 1
                    if bad >= patience:
                        break
        if best_state is not None:
            _model.load_parameters(net, best_state)
        net.eval()
        self.chosen["epochs_run"] = epoch + 1
        if best > -math.inf:
            self.chosen["val_prauc"] = round(best, 4)
