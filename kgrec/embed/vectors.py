"""Fused entity vectors: the one function later stages call.

The fused vector of an entity is ``[KGE vector / ||KGE||, GNN vector / ||GNN||]`` (each part L2-normalised
so neither dominates by scale); a part that was not trained is left out. Entities are keyed
``"<Label>:<id>"`` (see :mod:`kgrec.embed.export`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from kgrec.errors import WorkspaceError


def embed_dir(workspace: Path | str) -> Path:
    return Path(workspace) / "embed"


def _normalise(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


@dataclass
class EntityVectors:
    """Fused vectors with their index. ``get(keys)`` returns ``(vectors, found_mask)``."""

    index: dict[str, int]
    vectors: np.ndarray
    parts: tuple[str, ...]

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def get(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        rows = np.array([self.index.get(k, -1) for k in keys], dtype=np.int64)
        found = rows >= 0
        out = np.zeros((len(keys), self.dim), dtype=np.float32)
        out[found] = self.vectors[rows[found]]
        return out, found


@lru_cache(maxsize=4)
def _load(workspace: str, mtime_key: tuple) -> EntityVectors:
    from kgrec.embed.gnn import GNNResult
    from kgrec.embed.kge import KGEResult

    folder = embed_dir(workspace)
    parts, mats, entities = [], [], None
    for name, cls in (("kge", KGEResult), ("gnn", GNNResult)):
        if (folder / name / "vectors.safetensors").exists():
            res = cls.load(folder / name)
            if entities is not None and res.entities != entities:
                raise WorkspaceError(f"{name} vectors use another entity index than the others: retrain both stages")
            entities = res.entities
            parts.append(name)
            mats.append(_normalise(res.entity_vectors.astype(np.float32)))
    if not parts:
        raise WorkspaceError(f"no embeddings in {folder}: run `kgrec train --stage kge` (and `--stage gnn`) first")
    return EntityVectors({e: i for i, e in enumerate(entities)}, np.concatenate(mats, axis=1), tuple(parts))


def load_entity_vectors(workspace: Path | str) -> EntityVectors:
    folder = embed_dir(workspace)
    key = tuple((p.name, p.stat().st_mtime_ns) for p in sorted(folder.glob("*/vectors.safetensors"))) if folder.exists() else ()
    return _load(str(Path(workspace).resolve()), key)


def entity_vectors(workspace: Path | str, ids: Sequence[str]) -> np.ndarray:
    """Fused vectors for entity keys (``"Drug:B01A"``, ``"DiagnosisCode:ICD9CM:4019"``); zeros where unknown."""
    return load_entity_vectors(workspace).get(ids)[0]
