"""What the teacher computes once and reuses.

* In memory, per cohort: the tokenised prompts; and (frozen backbone, no soft prompt) the backbone's pooled
  states by prompt content, in memory and on disk (:mod:`kgrec.teacher.encodings`), shared by every fold,
  model, run and workspace (:func:`no_state_cache` sets them aside).
* On disk, per training patients + config + embeddings: the trained teacher and the pooled states and
  logits of every target visit (``<workspace>/teacher/<key>/``, :func:`train_or_load`), so K-fold CV of
  teacher and student trains K teachers, not 2K.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from kgrec.cohort.base import Cohort
from kgrec.cohort.samples import Samples, build_samples
from kgrec.teacher.encodings import _MEMORY as _POOLED
from kgrec.teacher.encodings import disabled as _encodings_disabled
from kgrec.teacher.config import FORMAT_VERSION, TeacherConfig, json_default, teacher_dir, workspace_teacher_config

# ---- per-cohort caches shared by every fold / model of a run ----
_TOKENS: dict[tuple, dict[int, list[int]]] = {}  # _POOLED: the encoding store's memory (token hash -> state)


@contextmanager
def no_state_cache():
    """Set the in-memory token and backbone-state caches aside, and the on-disk encoding store off, for
    the duration of a block, so that a timed prediction tokenises and encodes its visits as it would for
    new patients; the caches are put back afterwards."""
    saved = [(c, dict(c)) for c in (_TOKENS, _POOLED)]
    for c, _ in saved:
        c.clear()
    try:
        with _encodings_disabled():
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



# ---------------- the trained teachers' cache ----------------
def features_key(cohort: Cohort, train: Samples, val: Samples, config: TeacherConfig, workspace: Path | str | None = None,
                 drug_vocab: list[str] | None = None) -> str:
    """Hash of the cohort, the sorted training (and validation) patient ids, the config, the output
    vocabulary when it is not the cohort's (``kgrec transfer`` zero-shot scores the drugs the sites share)
    and (when the graph is used) the embedding files' sizes and times, so new embeddings give a new teacher."""
    payload = {
        "cohort": cohort_fingerprint(cohort), "train": sorted(set(map(str, train.patient_id))),
        "val": sorted(set(map(str, val.patient_id))), "config": config.to_json(), "format": FORMAT_VERSION,
    }
    if drug_vocab is not None and list(drug_vocab) != cohort.vocab("drug"):
        payload["drug_vocab"] = list(drug_vocab)
    if workspace is not None and ((config.graph_prompt and config.soft_tokens) or config.fuse_graph):
        from kgrec.embed.vectors import embed_dir

        payload["embed"] = [(p.parent.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(embed_dir(workspace).glob("*/vectors.safetensors"))]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def train_or_load(
    cls: type, workspace: Path | str, cohort: Cohort, train: Samples, val: Samples, config: TeacherConfig | None = None, progress: bool = False,
    drug_vocab: list[str] | None = None,
):
    """The teacher (an instance of ``cls``: :class:`~kgrec.teacher.recommender.TeacherRecommender`, passed
    in so that this module does not import the recommender, which imports it) trained on ``train``
    (early stopping and threshold on ``val``), from the cache
    ``<workspace>/teacher/<key>/`` (key: :func:`features_key`) or trained and cached there. Its output layer
    is ``drug_vocab`` (default: the cohort's drug vocabulary).

    The cache folder holds the model (``model/``), and the pooled states and logits of every target visit
    of the cohort: ``features.safetensors`` (``features`` (n, H) float32, ``logits`` (n, |vocab|)) with
    ``features.json`` (visit ids, drug vocab, config, patient counts). It is written to a temporary folder
    and renamed into place, so an interrupted run leaves no half-written cache.
    """
    from safetensors.numpy import save_file

    config = config or workspace_teacher_config(workspace)
    key = features_key(cohort, train, val, config, workspace, drug_vocab)
    folder = teacher_dir(workspace) / key
    if (folder / "features.safetensors").exists() and (folder / "model" / "config.json").exists():
        return cls.load(folder / "model", progress=progress), folder
    vocab = list(drug_vocab) if drug_vocab is not None else cohort.vocab("drug")
    t0, c0 = time.perf_counter(), time.process_time()
    rec = cls(vocab, config, workspace=workspace, progress=progress, cache=False).fit(cohort, train, val)
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
        }, indent=1, default=json_default))
        from kgrec.fsatomic import replace_dir

        replace_dir(tmp, folder)  # modes by the umask; readers see the old entry or the new one
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return rec, folder



def cache_folder(workspace: Path | str, cohort: Cohort, train: Samples, val: Samples, config: TeacherConfig, drug_vocab: list[str] | None = None) -> Path:
    """``<workspace>/teacher/<key>/`` of the teacher trained on ``train`` with ``config`` (and ``drug_vocab``)."""
    return teacher_dir(workspace) / features_key(cohort, train, val, config, workspace, drug_vocab)


def has_features(folder: Path) -> bool:
    return (folder / "features.safetensors").exists() and (folder / "features.json").exists()


def read_features(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(features, logits, visit_ids)`` of a cache folder."""
    from safetensors.numpy import load_file

    meta = json.loads((folder / "features.json").read_text())
    arr = load_file(str(folder / "features.safetensors"))
    return arr["features"], arr["logits"], np.array(meta["visit_ids"], dtype=object)
