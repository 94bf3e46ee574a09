"""Training the student, with feature-level distillation from the teacher.

loss = BCE(logits, labels) + α · MSE(P · student_feature, teacher_feature)
       + β · T² · BCE(σ(logits / T), σ(teacher_logits / T))
       + λ · align(profile prompt, current drug set)      (LEADER's profile–visit alignment; off by default)

Teacher features and logits are computed once and cached in the workspace by the teacher stage
(:func:`kgrec.teacher.teacher_features`), so distillation never holds the language model in memory.
Early stopping on validation PRAUC; the best epoch's weights are kept.

(Over the ~400-line guide: the config, the featurizer, the training loop and save/load share the
featurizer's and the model's state, and split apart they would only pass it back and forth.)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress
from safetensors.torch import load_file, save_file
from torch import nn

from kgrec.cohort.base import Cohort
from kgrec.cohort.codes import graph_code_key, is_procedure
from kgrec.cohort.samples import Samples
from kgrec.metrics import per_visit
from kgrec.models.base import Recommender
from kgrec.progress import report
from kgrec.student import ddp
from kgrec.student.model import LeaderStudentModel, ProfileVocab, StudentModel, alignment_loss

# (cohort, train, val) -> (features (len(train), d_teacher), logits (len(train), n_drugs) or None)
TeacherProvider = Callable[[Cohort, Samples, Samples], tuple[np.ndarray, np.ndarray | None]]


CONCEPT_LR_FACTOR = 10.0  # learning rate of the graph-grounded concept term, relative to StudentConfig.lr


@dataclass
class StudentConfig:
    """Student settings (defaults: see the comment on alpha/beta and docs/student.md)."""

    dim: int = 64  # hidden size of the visit encoder
    epochs: int = 200  # upper bound; early stopping usually ends sooner
    patience: int = 20  # epochs without a better validation PRAUC before stopping
    lr: float = 2e-3
    weight_decay: float = 1e-4
    batch_size: int = 128
    dropout: float = 0.2
    max_history: int = 8  # earlier visits the encoder reads (most recent first)
    # alpha/beta: chosen by mean validation PRAUC over 5 patient-level folds of the MIMIC-III demo among
    # alpha in {0, 0.3, 1} x beta in {0, 0.5} (scripts/bench_student.py); every grid point's test PRAUC lay
    # within 0.003 of the others, so distillation's effect there is inside the noise (docs/student.md)
    alpha: float = 0.3  # weight of the feature-distillation MSE
    beta: float = 0.5  # weight of the soft-label term on teacher logits
    temperature: float = 2.0
    graph: bool = True  # use fused graph vectors and the graph prior (False: ablation)
    # graph-grounded codes: a wide concept -> drug term over each code's graph expansion, shared and per site
    # (kgrec.student.concepts; needs the workspace graph tables; arch "kgrec" only)
    concepts: bool = False
    seed: int = 42
    # LEADER's profile machinery (docs/student.md "Patient profile"); each a switch, off by default until
    # measured better (scripts/bench_profile.py)
    profile: bool = False  # profile encoder: age bin, sex, admission fields -> a prompt vector
    align: bool = False  # LEADER's profile–visit alignment loss (needs profile)
    align_weight: float = 0.005  # LEADER's --align_weight (experiment/mimic3/online_distill.bash)
    # "kgrec": attention-pooling student (model.StudentModel); "leader": the reference code's set- and
    # visit-level transformers (model.LeaderStudentModel)
    arch: str = "kgrec"
    layers: int = 1  # transformer layers per encoder (arch "leader"; LEADER's --num_trm_layers)
    heads: int = 4  # attention heads (arch "leader")
    device: str = "auto"  # cpu, cuda or auto (a GPU where one is visible); the one used is in chosen["device"]

    def __post_init__(self):
        if self.alpha < 0 or self.beta < 0:
            raise ValueError("alpha and beta must be ≥ 0")
        if self.temperature <= 0:
            raise ValueError("temperature must be > 0")
        if self.dim < 1 or self.epochs < 1 or self.batch_size < 1:
            raise ValueError("dim, epochs and batch_size must be ≥ 1")
        if self.arch not in ("kgrec", "leader"):
            raise ValueError(f"arch must be 'kgrec' or 'leader', got {self.arch!r}")
        if self.align and not self.profile:
            raise ValueError("align (the profile–visit alignment loss) needs profile = True")
        if self.align_weight < 0:
            raise ValueError("align_weight must be ≥ 0")
        if self.concepts and self.arch != "kgrec":
            raise ValueError("concepts (graph-grounded codes) work with arch 'kgrec' only")
        if self.arch == "leader" and self.dim % self.heads:
            raise ValueError(f"dim ({self.dim}) must be a multiple of heads ({self.heads})")

    @classmethod
    def from_dict(cls, d: dict) -> StudentConfig:
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown student settings: {sorted(unknown)}")
        return cls(**d)


class Featurizer:
    """Turns samples into padded index tensors; owns the code/drug vocabularies and graph inputs."""

    def __init__(self, cohort: Cohort, train: Samples, drug_vocab: list[str], workspace: Path | None, config: StudentConfig):
        known = sorted({c for d, p in zip(train.diagnoses, train.procedures) for c in d + p} | {c for i in _hist_rows(train) for c in _codes_of(cohort, i)})
        rest = sorted({c for col in ("diagnoses", "procedures") for cs in cohort.visits[col] for c in cs} - set(known))
        self.codes = known + rest
        self.n_known = len(known)
        self.drugs = list(drug_vocab)
        self.code_index = {c: i + 1 for i, c in enumerate(self.codes)}
        self.drug_index = {d: i + 1 for i, d in enumerate(self.drugs)}
        self.max_history = config.max_history
        self.code_vectors, self.drug_vectors, self.prior = self._graph_inputs(cohort, workspace, config.graph)
        self.concept_features = None
        if config.concepts:
            self.concept_features = _concept_features(cohort, train, workspace)

    def _graph_inputs(self, cohort: Cohort, workspace: Path | None, use_graph: bool):
        from scipy import sparse

        g = 1
        code_vec = np.zeros((len(self.codes) + 1, g), np.float32)
        drug_vec = np.zeros((len(self.drugs) + 1, g), np.float32)
        prior = sparse.csr_matrix((len(self.codes) + 1, len(self.drugs)), dtype=np.float32)
        self.graph_parts: tuple[str, ...] = ()
        if not use_graph or workspace is None:
            return code_vec, drug_vec, prior
        from kgrec.embed.vectors import load_entity_vectors
        from kgrec.graph.neighbourhood import prior_matrix, workspace_evidence

        ev = load_entity_vectors(workspace)
        keys = [graph_code_key(c) for c in self.codes]
        cv, _ = ev.get(keys)
        dv, _ = ev.get(["Drug:" + d for d in self.drugs])
        code_vec = np.vstack([np.zeros((1, ev.dim), np.float32), cv])
        drug_vec = np.vstack([np.zeros((1, ev.dim), np.float32), dv])
        prior = prior_matrix(workspace_evidence(Path(workspace) / "graph" / "tables"), [""] + self.codes, self.drugs)
        self.graph_parts = ev.parts + ("prior",)
        return code_vec, drug_vec, prior

    def batch(self, cohort: Cohort, samples: Samples) -> dict[str, torch.Tensor]:
        n = len(samples)
        cur = [[self.code_index[c] for c in d + p if c in self.code_index] for d, p in zip(samples.diagnoses, samples.procedures)]
        lc = max([len(x) for x in cur] + [1])
        codes = torch.zeros(n, lc, dtype=torch.long)
        for i, x in enumerate(cur):
            codes[i, : len(x)] = torch.as_tensor(x, dtype=torch.long)
        hists = [h[-self.max_history:] for h in samples.history]
        hmax = max([len(h) for h in hists] + [0])
        hc_lists = [[[self.code_index[c] for c in _codes_of(cohort, j) if c in self.code_index] for j in h] for h in hists]
        hd_lists = [[[self.drug_index[d] for d in cohort.visits["drugs"].iat[j] if d in self.drug_index] for j in h] for h in hists]
        lhc = max([len(v) for h in hc_lists for v in h] + [1])
        lhd = max([len(v) for h in hd_lists for v in h] + [1])
        hist_codes = torch.zeros(n, hmax, lhc, dtype=torch.long)
        hist_drugs = torch.zeros(n, hmax, lhd, dtype=torch.long)
        hist_mask = torch.zeros(n, hmax, dtype=torch.bool)
        hist_age = torch.zeros(n, hmax, dtype=torch.long)
        for i, (hc, hd) in enumerate(zip(hc_lists, hd_lists)):
            for k, (c, d) in enumerate(zip(hc, hd)):
                hist_codes[i, k, : len(c)] = torch.as_tensor(c, dtype=torch.long)
                hist_drugs[i, k, : len(d)] = torch.as_tensor(d, dtype=torch.long)
                hist_mask[i, k] = True
                hist_age[i, k] = len(hc) - k
        prior = torch.as_tensor(self._prior_rows(cur))
        out = {"codes": codes, "hist_codes": hist_codes, "hist_drugs": hist_drugs, "hist_mask": hist_mask, "hist_age": hist_age, "prior": prior}
        if getattr(self, "profile_vocab", None) is not None:  # helper-15: the patient profile (StudentConfig.profile)
            out["profile"] = self.profile_vocab.encode(samples.profiles())
        if getattr(self, "concept_features", None) is not None:
            out.update(self.concept_features.batch(cohort, samples))
        return out

    def _prior_rows(self, cur: list[list[int]], chunk: int = 4096) -> np.ndarray:
        """Each visit's graph prior, the sum of its codes' rows of the prior matrix, ``chunk`` visits at a
        time: the visits' dense code indicator (n x codes) was 4.3 GB at 100k visits and the product made a
        transposed copy of it (the distillation peaked at 11 GB). Same numbers: each output column of the
        sparse-times-dense product sums the same terms in the same order whatever the chunk."""
        n = len(cur)
        out = np.zeros((n, len(self.drugs)), np.float32)
        if not self.prior.nnz:
            return out
        for s in range(0, n, chunk):
            part = cur[s:s + chunk]
            rows = np.zeros((len(part), len(self.codes) + 1), np.float32)
            for i, x in enumerate(part):
                rows[i, x] = 1.0
            out[s:s + len(part)] = np.asarray(self.prior.T.dot(rows.T).T, dtype=np.float32)
        return out

    def state(self) -> dict:
        cf = getattr(self, "concept_features", None)
        return {"codes": self.codes, "n_known": self.n_known, "drugs": self.drugs, "max_history": self.max_history, "graph_parts": list(self.graph_parts),
                **({"concepts": cf.state()} if cf is not None else {})}


def workspace_student_config(workspace: Path | str | None) -> tuple[StudentConfig, str]:
    """``(config, origin)``: the saved student's settings in ``<workspace>/student/student.json`` (origin
    ``"workspace student"``), else the defaults (``"defaults"``)."""
    if workspace is not None:
        meta = Path(workspace) / "student" / "student.json"
        prov = Path(workspace) / "student" / "provenance.json"
        if prov.exists() and json.loads(prov.read_text()).get("model") == "student-pooled":
            # the deployed student is the pooled one (kgrec.transfer.deploy); in-domain runs keep the in-domain settings
            kept = json.loads(prov.read_text()).get("in_domain_student_config")
            return (StudentConfig.from_dict(kept), "in-domain student before the pooled one was deployed") if kept else (StudentConfig(), "defaults")
        if meta.exists() and "config" in json.loads(meta.read_text()):
            return StudentConfig.from_dict(json.loads(meta.read_text())["config"]), "workspace student"
    return StudentConfig(), "defaults"


def workspace_teacher(workspace: Path | str, teacher_config=None, drug_vocab: list[str] | None = None) -> TeacherProvider:
    """Teacher features for the training samples from the workspace cache (trained there if absent:
    one teacher per set of training patients, so K-fold CV trains K teachers, never on test patients);
    the teacher's output layer is ``drug_vocab`` (the student's; default the cohort's)."""

    def provide(cohort: Cohort, train: Samples, val: Samples):
        from kgrec.teacher import teacher_features

        feats, logits, visit_ids = teacher_features(workspace, cohort, train, val, teacher_config, drug_vocab=drug_vocab)
        pos = {str(v): i for i, v in enumerate(visit_ids)}
        rows = [pos[str(cohort.visits["visit_id"].iat[i])] for i in train.visit_idx]
        return np.asarray(feats)[rows], (np.asarray(logits)[rows] if logits is not None else None)

    return provide


def _concept_features(cohort: Cohort, train: Samples, workspace: Path | None):
    """The graph-grounded concept features (StudentConfig.concepts); an error when there is no graph to ground in."""
    from kgrec.errors import WorkspaceError
    from kgrec.models.graph_logreg import workspace_expander
    from kgrec.student.concepts import ConceptFeatures

    folder = Path(workspace) / "graph" / "tables" if workspace is not None else None
    if folder is None or not (folder / "nodes").is_dir():
        raise WorkspaceError(f"the student's graph-grounded codes (concepts=True) need the workspace graph: run `kgrec load-graph`{' -w ' + str(workspace) if workspace else ''}")
    return ConceptFeatures.fit(cohort, train, workspace_expander(workspace, cohort, who="the student's graph-grounded codes"), folder)  # read once per process


def _codes_of(cohort: Cohort, row: int) -> list[str]:
    return list(cohort.visits["diagnoses"].iat[row]) + list(cohort.visits["procedures"].iat[row])


def _hist_rows(samples: Samples) -> set[int]:
    return {j for h in samples.history for j in h}


def _warn(message: str) -> None:
    import logging

    logging.getLogger("kgrec.student").warning(message)


def _target_ids(y: torch.Tensor) -> torch.Tensor:
    """(n, n_drugs) 0/1 labels -> (n, L) drug ids (1-based, 0 = padding), the current visit's drug set."""
    rows = [torch.nonzero(r).flatten() + 1 for r in y]
    out = torch.zeros(len(rows), max([len(r) for r in rows] + [1]), dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def _to(batch: dict[str, torch.Tensor], device: str) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()} if device != "cpu" else batch


def _slice(batch: dict[str, torch.Tensor], idx: torch.Tensor) -> dict[str, torch.Tensor]:
    return {k: v[idx] for k, v in batch.items()}


class StudentRecommender(Recommender):
    """The distilled student behind the :class:`Recommender` interface.

    Args:
        workspace: where the fused graph vectors and graph tables are read (None: no graph inputs).
        config: :class:`StudentConfig`.
        teacher: provider of teacher features/logits for the training samples; required when
            ``config.alpha`` or ``config.beta`` > 0.
    """

    name = "student"
    uses_workspace = True

    def __init__(self, drug_vocab: list[str], workspace: Path | str | None = None, config: StudentConfig | None = None, teacher: TeacherProvider | None = None, progress: bool = False):
        super().__init__(drug_vocab)
        self.progress = progress
        self.workspace = Path(workspace) if workspace is not None else None
        if config is None:
            # the settings of the workspace's trained student (kgrec train --stage distill / --recipe), so that
            # `kgrec evaluate`/`kgrec run` cross-validate the student the user trained; defaults otherwise
            config, origin = workspace_student_config(self.workspace)
        else:
            origin = "given"
        self.config = config
        if teacher is None and self.workspace is not None and (self.config.alpha > 0 or self.config.beta > 0):
            teacher = workspace_teacher(self.workspace, drug_vocab=self.drug_vocab)
        self.teacher = teacher
        self.history: list[dict] = []
        self.chosen["config_from"] = origin

    def fit(self, cohort: Cohort, train: Samples, val: Samples) -> StudentRecommender:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        self.featurizer = Featurizer(cohort, train, self.drug_vocab, self.workspace, cfg)
        fz = self.featurizer
        fz.profile_vocab = None
        if cfg.profile:
            fields = cohort.profile_fields()
            self.chosen["profile_fields"] = fields
            if fields:
                fz.profile_vocab = ProfileVocab.from_samples(fields, train.profiles())
            else:
                # said and recorded, never silent: the switch is on but the cohort has no profile to read
                self.chosen["profile_missing"] = cohort.report.get("profile_missing", "the cohort has no profile fields")
                _warn(f"student: profile is on but {self.chosen['profile_missing']}; training without it")
        self._check_graph(fz)
        from kgrec.embed.device import resolve_device

        dev = self.device = resolve_device(cfg.device)
        acc = ddp.accelerator(dev, cfg.batch_size)  # None unless `accelerate launch` started several processes
        n_proc, rank = (acc.num_processes, acc.process_index) if acc is not None else (1, 0)
        if acc is not None:
            dev = self.device = str(acc.device)
            self.chosen["processes"] = n_proc
        self.chosen["device"] = dev
        self.model = self._build_model(fz).to(dev)
        xb = _to(fz.batch(cohort, train), dev)
        y = torch.as_tensor(self.targets(train), dtype=torch.float, device=dev)
        t_feat = t_logit = proj = None
        distil = cfg.alpha > 0 or cfg.beta > 0
        if distil:
            if self.teacher is None:
                raise ValueError("distillation (alpha or beta > 0) needs teacher features: train the teacher first, or set alpha = beta = 0")
            self._note_teacher()
            f, lg = self.teacher(cohort, train, val)
            t_feat = torch.as_tensor(f, dtype=torch.float, device=dev)
            t_logit = torch.as_tensor(lg, dtype=torch.float, device=dev) if lg is not None else None
            proj = nn.Linear(2 * cfg.dim if cfg.arch == "leader" else cfg.dim, t_feat.shape[1]).to(dev)
        trained = list(self.model.parameters()) + (list(proj.parameters()) if proj is not None else [])
        params = trained
        head = getattr(self.model, "concept_head", None)
        if head is not None:  # the linear concept term learns at a linear model's pace, not the encoder's
            own = {id(q) for q in head.parameters()}
            params = [{"params": [q for q in trained if id(q) not in own]}, {"params": list(head.parameters()), "lr": cfg.lr * CONCEPT_LR_FACTOR}]
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        if acc is not None:
            ddp.broadcast(trained)
        xv = _to(fz.batch(cohort, val), dev) if len(val) else None
        yv = self.targets(val) if len(val) else None
        best, best_state, bad = -1.0, None, 0
        with Progress(transient=True, disable=not self.progress) as bar:
            task = bar.add_task("student", total=cfg.epochs)
            for epoch in range(cfg.epochs):
                self.model.train()
                order = torch.as_tensor(rng.permutation(len(train)), device=dev)
                total = 0.0
                for s in range(0, len(order), cfg.batch_size):
                    idx = order[s:s + cfg.batch_size][rank::n_proc]
                    if not len(idx):  # this rank's share of a short last batch is empty: zero gradients, same step
                        opt.zero_grad()
                        ddp.average_gradients(trained, n_proc)
                        opt.step()
                        continue
                    logits, feat = self.model(_slice(xb, idx))
                    loss = nn.functional.binary_cross_entropy_with_logits(logits, y[idx])
                    if cfg.alpha > 0:
                        loss = loss + cfg.alpha * nn.functional.mse_loss(proj(feat), t_feat[idx])
                    if cfg.align and fz.profile_vocab is not None and len(idx) > 1:
                        drugs = _target_ids(y[idx]).to(dev)
                        loss = loss + cfg.align_weight * alignment_loss(self.model.prompt(_slice(xb, idx)), self.model.drug_set(drugs))
                    if cfg.beta > 0 and t_logit is not None:
                        T = cfg.temperature
                        loss = loss + cfg.beta * T * T * nn.functional.binary_cross_entropy_with_logits(logits / T, torch.sigmoid(t_logit[idx] / T))
                    opt.zero_grad()
                    loss.backward()
                    if acc is not None:
                        ddp.average_gradients(trained, n_proc)
                    opt.step()
                    total += float(loss.detach()) * len(idx)
                score = self._val_prauc(xv, yv)
                self.history.append({"epoch": epoch, "loss": total / max(len(train), 1), "val_prauc": score})
                bar.advance(task)
                report(f"student: epoch {epoch + 1}/{cfg.epochs}, val PRAUC {score:.4f}")
                if score > best + 1e-5:
                    best, bad = score, 0
                    best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                else:
                    bad += 1
                    if bad >= cfg.patience:
                        break
        if best_state is not None:
            self.model.load_state_dict(best_state)
        self.chosen.update(best_epoch=int(np.argmax([h["val_prauc"] for h in self.history])), val_prauc=round(best, 4), graph=list(fz.graph_parts))
        self.model.eval()
        return self

    def _build_model(self, fz: Featurizer) -> nn.Module:
        cfg = self.config
        pv = getattr(fz, "profile_vocab", None)
        prof = {"profile_vocab": pv.size, "profile_fields": len(pv.fields)} if pv is not None else {}
        if cfg.arch == "leader":
            if pv is None:
                prof = {"profile_vocab": 1, "profile_fields": 1}  # LEADER's PaddingEncoder: a learned constant prompt
            is_proc = torch.as_tensor([False] + [is_procedure(c) for c in fz.codes], dtype=torch.bool)
            return LeaderStudentModel(torch.as_tensor(fz.code_vectors), torch.as_tensor(fz.drug_vectors), is_proc, fz.n_known, len(fz.drugs),
                                      len(self.drug_vocab), cfg.dim, cfg.layers, cfg.heads, cfg.dropout, **prof)
        model = StudentModel(torch.as_tensor(fz.code_vectors), torch.as_tensor(fz.drug_vectors), fz.n_known, len(fz.drugs), len(self.drug_vocab),
                             cfg.dim, cfg.max_history, cfg.dropout, **prof)
        cf = getattr(fz, "concept_features", None)
        if cf is not None:
            from kgrec.student.concept_head import ConceptHead

            model.concept_head = ConceptHead(cf.n_inputs, len(cf.sites), len(self.drug_vocab))
        return model

    def _val_prauc(self, xv, yv) -> float:
        if xv is None:
            return 0.0
        self.model.eval()
        with torch.no_grad():
            p = torch.sigmoid(self.model(xv)[0]).cpu().numpy()
        return float(per_visit(yv, p, p > 0.5)["prauc"].mean())

    def predict_proba(self, cohort: Cohort, samples: Samples) -> np.ndarray:
        dev = next(self.model.parameters()).device
        with torch.no_grad():
            return torch.sigmoid(self.model(_to(self.featurizer.batch(cohort, samples), dev))[0]).cpu().numpy()

    def _check_graph(self, fz: Featurizer) -> None:
        """Say and record what the graph inputs lack (never a silent degradation)."""
        if not self.config.graph or self.workspace is None:
            self.chosen["graph_inputs"] = "off" if not self.config.graph else "off: no workspace"
            return
        parts = [p for p in fz.graph_parts if p in ("kge", "gnn")]
        if len(parts) < 2:
            msg = f"only {'/'.join(parts) or 'no'} graph vectors in the workspace (kge and gnn expected): the fused vectors use {'/'.join(parts) or 'nothing'}"
            self.chosen["graph_degraded"] = msg
            _warn("student: " + msg)
        cv = np.asarray(fz.code_vectors[1:])
        missing = int((np.abs(cv).sum(1) == 0).sum()) if cv.size else 0
        if missing:
            self.chosen["codes_without_graph_vector"] = {"n": missing, "of": int(len(cv))}
            # recorded above; said as a warning unless the workspace's embedding stage already said it (the shared
            # cache's stage line counts the codes it could not give a vector), so the main job says it once, not per fold
            import logging

            from kgrec.embed.train import cache_info
            from kgrec.embed.vectors import embed_dir

            said = self.workspace is not None and cache_info(embed_dir(self.workspace) / "kge").get("used")
            msg = f"student: {missing} of {len(cv)} codes have no graph vector (they rely on their id embedding)"
            if said:
                logging.getLogger("kgrec.student").info(msg)
            else:
                _warn(msg)

    def _note_teacher(self) -> None:
        """Record (and say) when the distill stage trains a teacher of its own."""
        if self.workspace is None:
            return
        from kgrec.teacher.config import teacher_dir

        if not (teacher_dir(self.workspace) / "config.json").exists():
            msg = "no teacher trained in the workspace (`kgrec train --stage teacher`): the teacher stage's defaults are trained here for the distillation"
            self.chosen["teacher_trained_by_distill"] = msg
            _warn("student: " + msg)

    # ---- persistence: safetensors + JSON ----
    def save(self, folder: Path | str) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        save_file(state, str(folder / "student.safetensors"))
        p = self.featurizer.prior.tocoo()
        save_file({"row": torch.as_tensor(p.row, dtype=torch.long), "col": torch.as_tensor(p.col, dtype=torch.long), "val": torch.as_tensor(p.data, dtype=torch.float)}, str(folder / "prior.safetensors"))
        (folder / "student.json").write_text(json.dumps({
            "config": asdict(self.config), "drug_vocab": self.drug_vocab, "threshold": self.threshold,
            "featurizer": self.featurizer.state(), "chosen": self.chosen, "prior_shape": list(self.featurizer.prior.shape),
            "profile_vocab": self.featurizer.profile_vocab.state() if getattr(self.featurizer, "profile_vocab", None) is not None else None,
        }, indent=1))
        return folder

    @classmethod
    def load(cls, folder: Path | str) -> StudentRecommender:
        from scipy import sparse

        folder = Path(folder)
        meta = json.loads((folder / "student.json").read_text())
        if meta.get("kind") == "student-wide":  # the deployed pooled student may be the wide one (kgrec.workspace.saved_student_kind)
            from kgrec.student.linear import WideStudent

            return WideStudent.load(folder)
        obj = cls(meta["drug_vocab"], None, StudentConfig.from_dict(meta["config"]))
        obj.threshold, obj.chosen = meta["threshold"], meta["chosen"]
        state = load_file(str(folder / "student.safetensors"))
        fz = Featurizer.__new__(Featurizer)
        st = meta["featurizer"]
        fz.codes, fz.n_known, fz.drugs, fz.max_history, fz.graph_parts = st["codes"], st["n_known"], st["drugs"], st["max_history"], tuple(st["graph_parts"])
        fz.code_index = {c: i + 1 for i, c in enumerate(fz.codes)}
        fz.drug_index = {d: i + 1 for i, d in enumerate(fz.drugs)}
        fz.code_vectors, fz.drug_vectors = state["code_vectors"].numpy(), state["drug_vectors"].numpy()
        pr = load_file(str(folder / "prior.safetensors"))
        fz.prior = sparse.csr_matrix((pr["val"].numpy(), (pr["row"].numpy(), pr["col"].numpy())), shape=tuple(meta["prior_shape"]))
        pv = meta.get("profile_vocab")
        fz.profile_vocab = ProfileVocab(pv["fields"], pv["values"]) if pv else None
        fz.concept_features = None
        if st.get("concepts"):
            from kgrec.student.concepts import ConceptFeatures

            fz.concept_features = ConceptFeatures.from_state(st["concepts"], folder.parent / "graph" / "tables")
        obj.featurizer = fz
        prov = folder / "provenance.json"
        obj.provenance = json.loads(prov.read_text()) if prov.exists() else {"model": "student"}
        obj.model = obj._build_model(fz)
        obj.model.load_state_dict(state)
        obj.model.eval()
        return obj
