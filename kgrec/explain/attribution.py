"""Attributions: how much each input of a visit contributed to a drug's score, for the student and the
teacher (and any other recommender).

**Method: occlusion (leave one input out)** — Zeiler & Fergus, "Visualizing and Understanding
Convolutional Networks", ECCV 2014; for discrete inputs, erasure as in Li, Monroe & Jurafsky,
"Understanding Neural Networks through Representation Erasure", arXiv:1612.08220, 2016. The
contribution of input ``x`` to drug ``d`` is

    weight(x, d) = logit_d(visit) − logit_d(visit without x)

in logit units (> 0: the input raised the drug's score). The visit without ``x`` goes through the
model's own featurizer, so it is exactly what the model would see had the input not been recorded:

* a diagnosis or procedure code of the current visit: removed from it;
* an earlier drug: removed from every earlier visit of the patient;
* a profile field (age, sex, admission fields; only for a model that reads the profile): set missing;
* the graph prior, where the model has one: the student's per-drug evidence vector (the code -> drug
  graph evidence summed over the visit's codes) set to zero; the teacher's pooled graph vectors set
  to zero when it reads them (``--fuse-graph`` or the soft prompt).

Why occlusion rather than gradients: both models read sets of discrete codes, where "absent" is the
natural baseline and a gradient at the embedding says little about removing the code (the
integrated-gradients path from a zero embedding passes through inputs the model never saw); the
teacher reads a text prompt through a frozen MiniLM, where occlusion needs no gradients and no access
to the backbone. It costs one batched forward pass of (inputs + 1) visits per recommendation (a few
milliseconds for the student; one MiniLM pass per input for the teacher). Occlusion does not add up:
two codes that carry the same information each get little weight (the model still has the other),
so ``weight`` measures what the model loses without the input, not a share of the score.

**Exact parts where the model is additive.** The student's logit is ``deep(visit) + prior_weight ·
prior(visit) + wide(visit)``, and the last two terms are sums over the visit's codes. For a code, the
occlusion weight therefore splits exactly into ``wide`` (its own code -> drug weight), ``prior`` (its
row of the graph-evidence matrix times the learned per-drug prior weight) and ``deep`` (the rest, the
change of the encoder's output). The teacher with ``--fuse-codes`` splits a code's weight into
``wide`` (its weight in the linear code term) and ``text`` (the change through the language model).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kgrec.cohort.base import Cohort
from kgrec.cohort.samples import Samples

METHOD = "occlusion"
CODE_KINDS = ("diagnosis", "procedure")
GRAPH_PRIOR = "graph_prior"
#: what the graph prior is, in words a clinician follows (its contribution's ``name``)
GRAPH_PRIOR_TEXT = ("graph prior: how often this drug class is prescribed to visits like this one in general "
                    "(other patients with related codes, through the graph), not this patient's own codes")
_PROFILE_COLUMNS = ("age", "sex", "admission_type", "admission_location", "insurance", "unit_type", "unit_admit_source", "hospital_admit_source", "encounter_class")
_EPS = 1e-6

Input = tuple[str, str]  # (kind, id): ("diagnosis", "ICD9CM:4019"), ("earlier_drug", "B01A"), ("profile", "age"), ("graph_prior", "")


@dataclass
class Contribution:
    """One input's contribution to one drug's score."""

    input: str
    kind: str  # diagnosis | procedure | earlier_drug | profile | graph_prior
    name: str
    weight: float  # logit(visit) - logit(visit without the input)
    delta_probability: float  # probability(visit) - probability(visit without the input)
    parts: dict = field(default_factory=dict)  # exact split where the model is additive (see the module doc)

    def to_dict(self) -> dict:
        out = {"input": self.input, "kind": self.kind, "name": self.name, "weight": round(self.weight, 4), "delta_probability": round(self.delta_probability, 4)}
        if self.parts:
            out["parts"] = {k: round(v, 4) for k, v in self.parts.items()}
        return out


@dataclass
class Attribution:
    """Every input's contribution to one drug, largest weight first."""

    drug: str
    logit: float
    contributions: list[Contribution]
    method: str = METHOD

    def top(self, k: int, kinds: Sequence[str] = CODE_KINDS, positive: bool = True) -> list[Contribution]:
        """The ``k`` inputs of ``kinds`` with the largest weight (only those that raised the score when
        ``positive``)."""
        out = [c for c in self.contributions if c.kind in kinds and (c.weight > 0 or not positive)]
        return out[:k]

    def weight_of(self, input_id: str) -> float:
        return next((c.weight for c in self.contributions if c.input == input_id), 0.0)

    def to_dict(self, limit: int | None = None) -> dict:
        cs = self.contributions if limit is None else self.contributions[:limit]
        return {"method": self.method, "logit": round(self.logit, 4), "contributions": [c.to_dict() for c in cs]}


# ---------------------------------------------------------------------------- inputs of a visit
def visit_inputs(model, cohort: Cohort, samples: Samples, graph: bool = True) -> list[Input]:
    """The inputs of the (single) sample that the model can read: its codes, earlier drugs, profile
    fields (only for a model that reads them) and the graph prior (only for a model that has one)."""
    known = _known_codes(model)
    out: list[Input] = []
    for kind, codes in (("diagnosis", samples.diagnoses[0]), ("procedure", samples.procedures[0])):
        out += [(kind, c) for c in dict.fromkeys(codes) if known is None or c in known]
    drugs = cohort.visits["drugs"]
    earlier = dict.fromkeys(d for j in _history(model, samples) for d in drugs.iat[j])
    out += [("earlier_drug", d) for d in earlier]
    fields = _profile_fields(model, cohort)
    if fields:
        row = int(samples.visit_idx[0])
        out += [("profile", f) for f in fields if f in cohort.visits and not _missing(cohort.visits[f].iat[row])]
    if graph and _has_graph_prior(model):
        out.append((GRAPH_PRIOR, ""))
    return out


def _known_codes(model) -> set[str] | None:
    if getattr(model, "code_vocab", None) is not None and not hasattr(model, "readable_codes"):
        return None  # the teacher reads every code's name in its prompt
    return model_code_vocab(model, None)


def model_code_vocab(model, cohort: Cohort | None) -> set[str] | None:
    """Codes the model can read (None: unknown, every code is taken as known): the wide student's and the
    student's code vocabularies; for the teacher, which reads names, its code vocabulary and every named
    code of ``cohort``."""
    if hasattr(model, "readable_codes"):  # the wide student (kgrec.student.linear)
        return model.readable_codes()
    fz = getattr(model, "featurizer", None)
    if fz is not None and getattr(fz, "codes", None) is not None:
        return set(fz.codes)
    if getattr(model, "code_vocab", None) is not None and cohort is not None:
        return set(model.code_vocab) | set(cohort.codes.loc[cohort.codes["kind"] != "drug", "code"])
    return None


def _history(model, samples: Samples) -> list[int]:
    h = list(samples.history[0])
    n = getattr(getattr(model, "featurizer", None), "max_history", None)
    if n is None:
        n = getattr(getattr(model, "config", None), "history", None)
    return h[-int(n):] if n else ([] if n == 0 else h)


def _profile_fields(model, cohort: Cohort) -> list[str]:
    """The profile fields the model reads: the student's profile encoder's, or every field of the
    cohort for a teacher whose prompt starts with the profile line."""
    pv = getattr(getattr(model, "featurizer", None), "profile_vocab", None)
    if pv is not None:
        return list(getattr(pv, "fields", []) or [])
    if getattr(getattr(model, "config", None), "profile", False) is True and getattr(model, "name", "") == "teacher":
        return [c for c in _PROFILE_COLUMNS if c in cohort.visits]
    return []


def _has_graph_prior(model) -> bool:
    if hasattr(model, "has_graph_prior"):
        return bool(model.has_graph_prior)
    fz = getattr(model, "featurizer", None)
    if fz is not None and getattr(fz, "prior", None) is not None:
        return bool(getattr(fz.prior, "nnz", 0))
    return bool(getattr(model, "use_graph", False))


def visit_profile(visits: pd.DataFrame, rows: Sequence[int]) -> dict:
    """``{"profile": [...]}``: the profile fields present at each row, as :class:`Samples` carries them
    (``{}`` where Samples has no profile)."""
    if not any(f.name == "profile" for f in dataclasses.fields(Samples)):
        return {}
    cols = [c for c in _PROFILE_COLUMNS if c in visits]
    arrays = {c: visits[c].to_numpy() for c in cols}
    return {"profile": [_profile({c: arrays[c][int(r)] for c in cols}, cols) for r in rows]}


def _profile(r: dict, cols: Sequence[str]) -> dict:
    return {c: (float(r[c]) if c == "age" else str(r[c])) for c in cols if not _missing(r.get(c))}


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and np.isnan(x))


# ---------------------------------------------------------------------------- occluded visits
def occluded_cohort(cohort: Cohort, samples: Samples, removals: Sequence[frozenset]) -> tuple[Cohort, Samples]:
    """A cohort of one pseudo-patient per removal set (its earlier visits and current visit copied,
    the removed inputs taken out) and their samples, in the order of ``removals``."""
    v = cohort.visits
    row = int(samples.visit_idx[0])
    hist = list(samples.history[0])
    src = hist + [row]
    part = v.iloc[src]  # the patient's rows, read once (no per-row pandas)
    base = {c: part[c].tolist() for c in v.columns}
    cols: dict[str, list] = {c: [] for c in v.columns}
    vidx, history = [], []
    for k, removed in enumerate(removals):
        drop_codes = {i for kind, i in removed if kind in CODE_KINDS}
        drop_drugs = {i for kind, i in removed if kind == "earlier_drug"}
        drop_fields = {i for kind, i in removed if kind == "profile"}
        pid = f"occlusion:{k}"
        start = len(cols["visit_id"])
        for c in v.columns:
            cols[c].extend(base[c])
        for order in range(len(src)):
            cols["patient_id"][start + order] = pid
            cols["visit_id"][start + order] = f"{pid}:{order}"
            cols["visit_order"][start + order] = order
            if order < len(hist) and drop_drugs:
                cols["drugs"][start + order] = [d for d in base["drugs"][order] if d not in drop_drugs]
        cur = start + len(hist)
        cols["diagnoses"][cur] = [c for c in samples.diagnoses[0] if c not in drop_codes]
        cols["procedures"][cur] = [c for c in samples.procedures[0] if c not in drop_codes]
        for f in drop_fields:
            cols[f][cur] = np.nan if f == "age" else None
        vidx.append(cur)
        history.append(list(range(start, cur)))
    visits = pd.DataFrame(cols, columns=list(v.columns))
    occ = Cohort(visits, cohort.codes, cohort.source)
    n = len(removals)
    s = Samples(np.array(vidx), np.array([f"occlusion:{k}" for k in range(n)], dtype=object),
                [list(cols["diagnoses"][i]) for i in vidx], [list(cols["procedures"][i]) for i in vidx], history,
                [[] for _ in range(n)], np.array([not hist] * n), **visit_profile(visits, vidx))
    return occ, s


def occluded_logits(model, cohort: Cohort, samples: Samples, removals: Sequence[frozenset]) -> np.ndarray:
    """Logits ``(len(removals), n_drugs)`` of the single sample with each set of inputs removed."""
    occ, s = occluded_cohort(cohort, samples, removals)
    zero_prior = np.array([any(kind == GRAPH_PRIOR for kind, _ in r) for r in removals])
    if hasattr(model, "occlusion_logits"):  # a model that removes its own graph prior (the wide student)
        return model.occlusion_logits(occ, s, zero_prior)
    if hasattr(model, "featurizer") and hasattr(model, "model"):
        return _student_logits(model, occ, s, zero_prior)
    if getattr(model, "name", "") == "teacher":
        return _teacher_logits(model, occ, s, zero_prior)
    if zero_prior.any():
        raise ValueError(f"{type(model).__name__} has no graph prior to remove")
    p = np.clip(np.asarray(model.predict_proba(occ, s), dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def _student_logits(model, cohort: Cohort, samples: Samples, zero_prior: np.ndarray) -> np.ndarray:
    import torch

    batch = model.featurizer.batch(cohort, samples)
    if zero_prior.any():
        batch["prior"][torch.as_tensor(zero_prior)] = 0.0
    model.model.eval()
    with torch.no_grad():
        return model.model(batch)[0].double().numpy()


def _teacher_logits(model, cohort: Cohort, samples: Samples, zero_prior: np.ndarray) -> np.ndarray:
    from kgrec.teacher.cache import no_state_cache

    with no_state_cache():  # occluded visits are new prompts: encode them, keep the caches clean
        inputs = model._inputs(cohort, samples)
        if zero_prior.any() and inputs.get("graph") is not None:
            inputs["graph"] = inputs["graph"].copy()
            inputs["graph"][zero_prior] = 0.0
        _, logits = model._forward_all(inputs, getattr(model, "accelerator", None))
    return logits.double().numpy()


# ---------------------------------------------------------------------------- attribution
def attribute(model, cohort: Cohort, samples: Samples, drugs: Sequence[str], names: dict[str, str] | None = None,
              inputs: Sequence[Input] | None = None) -> dict[str, Attribution]:
    """Occlusion attributions of every input of the single sample (``samples`` holds one visit) to
    each of ``drugs`` (ids of the model's vocabulary), largest weight first."""
    if len(samples) != 1:
        raise ValueError("attribute() explains one visit at a time")
    names = names or {}
    inputs = list(inputs) if inputs is not None else visit_inputs(model, cohort, samples)
    removals = [frozenset()] + [frozenset([x]) for x in inputs]
    logits = occluded_logits(model, cohort, samples, removals)
    vocab = {d: i for i, d in enumerate(model.drug_vocab)}
    cols = [vocab[d] for d in drugs]
    full, without = logits[0, cols], logits[1:, cols]
    parts = _exact_parts(model, inputs, cols, full - without)
    weights = full[None, :] - without
    dprob = _sigmoid(full)[None, :] - _sigmoid(without)
    out = {}
    for j, d in enumerate(drugs):
        cs = []
        for i, (kind, x) in enumerate(inputs):
            w, dp = float(weights[i, j]), float(dprob[i, j])
            label = GRAPH_PRIOR_TEXT if kind == GRAPH_PRIOR else names.get(x, "")
            cs.append(Contribution(x or GRAPH_PRIOR, kind, label, w, dp, parts.get((i, j), {})))
        cs.sort(key=lambda c: (-c.weight, c.kind, c.input))
        out[d] = Attribution(d, float(full[j]), cs)
    return out


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _exact_parts(model, inputs: Sequence[Input], cols: list[int], total: np.ndarray) -> dict[tuple[int, int], dict]:
    """The exactly decomposable parts of each code's weight (see the module docstring)."""
    out: dict[tuple[int, int], dict] = {}
    net = getattr(model, "model", None)
    fz = getattr(model, "featurizer", None)
    if fz is not None and net is not None and hasattr(net, "wide"):
        wide = net.wide.weight.detach().double().numpy()
        pw = net.prior_weight.detach().double().numpy() if hasattr(net, "prior_weight") else None
        prior = fz.prior.tocsr() if getattr(fz.prior, "nnz", 0) and pw is not None else None
        code_rows = [(i, fz.code_index.get(x, 0)) for i, (kind, x) in enumerate(inputs) if kind in CODE_KINDS]
        if not code_rows:
            return out
        idxs = np.array([idx for _, idx in code_rows])
        seen = (idxs > 0) & (idxs <= fz.n_known)  # codes first seen after training have no wide weight
        w = np.where(seen[:, None], wide[np.where(seen, idxs, 0)][:, cols], 0.0)
        p = prior[idxs][:, cols].toarray() * pw[cols] if prior is not None else np.zeros_like(w)
        for r, (i, _) in enumerate(code_rows):
            for j in range(len(cols)):
                out[(i, j)] = {"wide": float(w[r, j]), "prior": float(p[r, j]), "deep": float(total[i, j] - w[r, j] - p[r, j])}
        return out
    tnet = getattr(model, "net", None)
    if tnet is not None and getattr(tnet, "wide", None) is not None and getattr(model, "code_vocab", None):
        wide = tnet.wide.weight.detach().double().numpy()  # (n_drugs, n_codes)
        pos = {c: k for k, c in enumerate(model.code_vocab)}
        for i, (kind, x) in enumerate(inputs):
            if kind not in CODE_KINDS:
                continue
            w = wide[cols, pos[x]] if x in pos else np.zeros(len(cols))
            for j in range(len(cols)):
                out[(i, j)] = {"wide": float(w[j]), "text": float(total[i, j] - w[j])}
    return out


__all__ = ["CODE_KINDS", "GRAPH_PRIOR", "GRAPH_PRIOR_TEXT", "METHOD", "Attribution", "Contribution", "attribute", "occluded_cohort", "occluded_logits", "visit_inputs", "visit_profile"]
