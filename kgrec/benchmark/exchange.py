"""The file exchange with external model runners (PyHealth runs in its own virtual environment).

kgrec writes one request per split (``request.json``); the runner writes probabilities back (see
:mod:`kgrec.benchmark.pyhealth_runner` for the layout). The request carries, for every target visit of
the split's patients, the same inputs kgrec's models see, in PyHealth's drug-recommendation layout:

- ``conditions`` / ``procedures``: one list of codes per visit, the patient's earlier visits first and
  the target visit last (kgrec's history: every earlier visit of the patient by visit order, or the
  ``max_history`` most recent ones);
- ``drugs_hist``: the drugs of those visits, with the target visit's own list empty;
- ``drugs``: the target visit's ATC3 drugs (the label);
- ``part``: ``train``, ``val`` or ``test`` (kgrec's patient split; the runner never trains on the others).

It also carries kgrec's drug vocabulary (the column order of the returned matrices), the DDI pairs as
index pairs over that vocabulary (the matrix kgrec's DDI-rate metric uses) and, when the open data has
them, ATC3 -> SMILES for the molecule-based models.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kgrec.cohort.base import Cohort
from kgrec.cohort.samples import Samples

FORMAT = "kgrec-benchmark-exchange/1"
SMILES_FILE = "mappings/atc3_smiles.tsv"


def visit_records(cohort: Cohort, samples: Samples, part: str, max_history: int | None = None) -> list[dict]:
    """The request rows of one part: nested code lists, history first, target visit last (only the
    ``max_history`` most recent earlier visits when given)."""
    v = cohort.visits
    dx, px, rx, vid = v["diagnoses"], v["procedures"], v["drugs"], v["visit_id"]
    out = []
    for k, i in enumerate(samples.visit_idx):
        hist = list(samples.history[k])
        if max_history is not None:
            hist = hist[len(hist) - max_history:] if max_history > 0 else []
        out.append({
            "part": part,
            "patient_id": str(samples.patient_id[k]),
            "visit_id": str(vid.iat[i]),
            "conditions": [list(dx.iat[j]) for j in hist] + [list(samples.diagnoses[k])],
            "procedures": [list(px.iat[j]) for j in hist] + [list(samples.procedures[k])],
            "drugs_hist": [list(rx.iat[j]) for j in hist] + [[]],
            "drugs": list(samples.targets[k]),
        })
    return out


def load_smiles(data_dir: Path | str | None) -> dict[str, list[str]] | None:
    """ATC3 -> SMILES from the open data (``mappings/atc3_smiles.tsv``), or None when absent."""
    if data_dir is None:
        return None
    path = Path(data_dir) / SMILES_FILE
    if not path.exists():
        return None
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines()[1:]:
        parts = line.rstrip("\n").split("\t")
        if len(parts) >= 2 and parts[0] and parts[1]:
            out.setdefault(parts[0].strip(), []).append(parts[1].strip())
    return out


def ddi_index_pairs(ddi: np.ndarray) -> list[list[int]]:
    """Upper-triangle index pairs of a symmetric 0/1 matrix."""
    a, b = np.nonzero(np.triu(ddi, 1))
    return [[int(x), int(y)] for x, y in zip(a, b)]


def write_request(
    path: Path,
    cohort: Cohort,
    parts: dict[str, Samples],
    vocab: Sequence[str],
    ddi: np.ndarray,
    models: Sequence[str],
    config: dict,
    smiles: dict[str, list[str]] | None = None,
    split_name: str = "split",
    max_history: int | None = None,
) -> Path:
    """Write one split's request for an external runner."""
    samples = [r for part in ("train", "val", "test") for r in visit_records(cohort, parts[part], part, max_history)]
    req = {
        "format": FORMAT,
        "dataset": cohort.source,
        "split": split_name,
        "drug_vocab": list(vocab),
        "ddi_pairs": ddi_index_pairs(ddi),
        "smiles": smiles,
        "models": list(models),
        "config": config,
        "max_history": max_history,
        "counts": {p: len(parts[p]) for p in ("train", "val", "test")},
        "samples": samples,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(req))
    tmp.replace(path)
    return path


@dataclass
class ExternalResult:
    """What a runner returned for one model on one split."""

    model: str
    status: str  # "ok" | "error"
    error: str | None = None
    val: np.ndarray | None = None
    test: np.ndarray | None = None
    info: dict = field(default_factory=dict)


def read_result(out_dir: Path, model: str, n_val: int, n_test: int, n_drugs: int, runner_failure: str | None = None) -> ExternalResult:
    """Read one model's result; a missing or malformed one becomes an error with the reason."""
    mdir = Path(out_dir) / model
    res_path = mdir / "result.json"
    if not res_path.exists():
        why = runner_failure or "the runner wrote no result for this model"
        return ExternalResult(model, "error", why)
    info = json.loads(res_path.read_text())
    if info.get("status") != "ok":
        return ExternalResult(model, "error", info.get("error") or "the runner reported an error without a message", info=info)
    arrays = {}
    for part, n in (("val", n_val), ("test", n_test)):
        f = mdir / f"{part}.npy"
        if not f.exists():
            return ExternalResult(model, "error", f"the runner wrote no {part}.npy", info=info)
        a = np.load(f)
        if a.shape != (n, n_drugs):
            return ExternalResult(model, "error", f"{part}.npy has shape {a.shape}, expected {(n, n_drugs)}", info=info)
        if not np.isfinite(a).all():
            return ExternalResult(model, "error", f"{part}.npy holds non-finite probabilities", info=info)
        arrays[part] = a.astype(float)
    return ExternalResult(model, "ok", None, arrays["val"], arrays["test"], info)
