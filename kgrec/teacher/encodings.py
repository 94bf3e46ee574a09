"""Frozen-backbone encodings, computed once per (prompt, backbone, settings) and kept on disk.

With a frozen backbone and no soft prompt (``lora_r=0``, no graph prompt: the CPU teacher of ``kgrec run``
and the names view of ``site-ensemble-names``) a visit's pooled state depends only on its prompt's token
ids and on the backbone. This module keeps those states content-addressed:

* **Key** of a store: the backbone's fingerprint (sha256 of every file of its folder; files over 512 MB
  by size and modification time), how it runs (:func:`backbone_settings`: dtype and autocast, pooling, device
  type, torch and transformers versions) and :data:`FORMAT`. **Entry**: sha1 of the prompt's token ids.
  So folds, runs, pooled cohorts and workspaces that show the backbone the same prompt share its state.
* **On disk** beside the graph-vector cache (``$KGREC_CACHE/encodings/<key[:32]>/``; ``KGREC_CACHE=off``
  keeps them in memory only): ``about.json`` (what the key hashes) and shards
  ``shard-<sha256 of the file>.safetensors`` (``hashes`` (n, 20) uint8, ``states`` (n, H) float32). A
  shard is written to a temporary name, fsynced and renamed, under the store's ``flock``; every read
  checks a shard's sha256 against its name, and a shard that fails is reported, removed and its states
  computed again, never used. More than :data:`MAX_SHARDS` shards are merged into one.
* **Precision**: the backbone runs as loaded (fp32 on a CPU). Dynamic int8 quantisation was measured and
  left out: PyTorch's per-tensor activation scales put the MiniLM's pooled states at cosine 0.92 (mean;
  0.88 worst) of fp32, for 1.3x the throughput on 2 cores (docs/teacher.md, "Encoding cost").

:func:`kgrec.teacher.cache.no_state_cache` disables the store (memory and disk) for timed predictions.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import socket
import uuid
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

FORMAT = 1
MAX_SHARDS = 32
_BIG = 512 << 20
_SHARD = re.compile(r"^shard-(?P<sha>[0-9a-f]{64})\.safetensors$")
_TMP = re.compile(r"^\.shard\.tmp-(?P<host>[^-]+)-(?P<pid>\d+)-[0-9a-f]{8}$")
_MEMORY: dict[str, dict[bytes, np.ndarray]] = {}
_LOADED: set[str] = set()  # stores whose disk shards are in memory
_FINGERPRINTS: dict[tuple, str] = {}
_DISABLED = [False]


def backbone_fingerprint(model_path: str) -> str:
    """sha256 of a backbone folder's files (name, size, content; files over 512 MB by size and mtime),
    or of the name itself for a hub id; memoised per process."""
    root = Path(model_path)
    if not root.is_dir():
        return hashlib.sha256(f"id:{model_path}".encode()).hexdigest()
    files = sorted(p for p in root.rglob("*") if p.is_file())
    stamp = tuple((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    hit = _FINGERPRINTS.get((model_path, stamp))
    if hit:
        return hit
    h = hashlib.sha256()
    for p, (rel, size, mtime) in zip(files, stamp):
        h.update(f"{rel}\x1f{size}\x1f".encode())
        if size > _BIG:
            h.update(str(mtime).encode())
            continue
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    _FINGERPRINTS[(model_path, stamp)] = out = h.hexdigest()
    return out


def backbone_settings(model_path: str, causal: bool, dtype: str, device_type: str) -> dict:
    """What a pooled state depends on besides the token ids (hashed into the store's key)."""
    import torch
    import transformers

    return {"format": FORMAT, "backbone": backbone_fingerprint(model_path), "pooling": "last" if causal else "mean",
            "dtype": dtype, "device": device_type, "torch": torch.__version__.split("+")[0], "transformers": transformers.__version__}


def token_hash(ids: Sequence[int]) -> bytes:
    return hashlib.sha1(np.asarray(ids, dtype=np.int64).tobytes()).digest()


@contextmanager
def disabled():
    """No store lookups or writes inside the block (a timed prediction encodes as for new patients)."""
    was = _DISABLED[0]
    _DISABLED[0] = True
    try:
        yield
    finally:
        _DISABLED[0] = was


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class EncodingStore:
    """The pooled states of one (backbone, settings) key: in memory for the process, on disk when a
    cache folder is set (module docstring)."""

    def __init__(self, settings: dict):
        from kgrec.embed.cache import cache_root

        self.settings = settings
        self.key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
        root = cache_root()
        self.folder = root / "encodings" / self.key[:32] if root is not None else None
        self.memory = _MEMORY.setdefault(self.key, {})
        self.notes: dict = {}

    @property
    def enabled(self) -> bool:
        return not _DISABLED[0]

    @contextmanager
    def _lock(self):
        locks = self.folder.parent / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{self.key[:32]}.lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _shards(self) -> list[Path]:
        return sorted(p for p in self.folder.glob("shard-*.safetensors") if _SHARD.match(p.name)) if self.folder and self.folder.is_dir() else []

    def _read(self, path: Path) -> dict[bytes, np.ndarray] | None:
        """A shard's states, or None (said, counted and removed) when it fails its checksum or cannot be read."""
        from safetensors.numpy import load_file

        try:
            why = None if _sha256(path) == _SHARD.match(path.name).group("sha") else "fails its sha256 checksum"
            data = load_file(str(path)) if why is None else None
        except FileNotFoundError:
            return None  # merged away by another process meanwhile
        except Exception as exc:  # a truncated or foreign file
            why, data = f"unreadable ({type(exc).__name__})", None
        if why is not None:
            log.warning("encoding cache: %s %s; removing it (its states are computed again)", path, why)
            self.notes.setdefault("removed_corrupt_shards", []).append(path.name)
            path.unlink(missing_ok=True)
            return None
        return {bytes(h): s for h, s in zip(data["hashes"], data["states"])}

    def _load_disk(self) -> None:
        if self.folder is None or self.key in _LOADED:
            return
        for p in self._shards():
            self.memory.update(self._read(p) or {})
        _LOADED.add(self.key)

    def get(self, hashes: Sequence[bytes]) -> list[np.ndarray | None]:
        if not self.enabled:
            return [None] * len(hashes)
        if any(h not in self.memory for h in hashes):
            self._load_disk()
        return [self.memory.get(h) for h in hashes]

    def put(self, hashes: Sequence[bytes], states: np.ndarray) -> None:
        if not self.enabled or not len(hashes):
            return
        new = {h: np.asarray(s, dtype=np.float32) for h, s in zip(hashes, states)}
        self.memory.update(new)
        if self.folder is None:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with self._lock():
                about = self.folder / "about.json"
                if not about.exists():
                    self._write_atomic(about, json.dumps(self.settings, indent=1).encode())
                self._sweep()
                shards = self._shards()
                if len(shards) >= MAX_SHARDS:  # merge: every state of the store into one shard
                    self._load_disk()
                    self._write_shard(self.memory)
                    for p in shards:
                        p.unlink(missing_ok=True)
                else:
                    self._write_shard(new)
        except OSError as exc:  # a full or read-only cache folder: the states stay in memory, and that is said
            log.warning("encoding cache: cannot write to %s (%s); states kept in memory for this run only", self.folder, exc.strerror or exc)
            self.notes["not_written"] = str(exc.strerror or exc)

    def _write_shard(self, states: dict[bytes, np.ndarray]) -> None:
        from safetensors.numpy import save

        hashes = np.frombuffer(b"".join(states), dtype=np.uint8).reshape(len(states), 20)
        blob = save({"hashes": hashes, "states": np.stack(list(states.values())).astype(np.float32)})
        self._write_atomic(self.folder / f"shard-{hashlib.sha256(blob).hexdigest()}.safetensors", blob)

    def _write_atomic(self, target: Path, blob: bytes) -> None:
        host = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"
        tmp = target.parent / f".shard.tmp-{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            with open(tmp, "wb") as fh:
                fh.write(blob)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def _sweep(self) -> None:
        """Temporary shards whose writer (on this host) is gone."""
        from kgrec.fsatomic import pid_alive

        host = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"
        for p in self.folder.iterdir():
            m = _TMP.match(p.name)
            if m and m.group("host") == host and not pid_alive(int(m.group("pid"))):
                p.unlink(missing_ok=True)


def clear_memory() -> None:
    """Forget the in-memory states (tests; the disk shards stay)."""
    _MEMORY.clear()
    _LOADED.clear()


def encode_texts(texts: Sequence[str], model: str | None = None, batch_size: int = 128) -> np.ndarray:
    """Mean-pooled (last token for a causal LM) states of short texts, e.g. code names, from the frozen
    backbone ``model`` (default: the offline MiniLM), each text encoded once ever through the store."""
    import torch

    from kgrec.embed.device import resolve_device
    from kgrec.teacher import model as _model

    path = _model.resolve_model_path(model)
    backbone, tok, causal = _model.load_backbone(path)
    backbone.eval()
    store = EncodingStore(backbone_settings(path, causal, str(next(backbone.parameters()).dtype).removeprefix("torch."), resolve_device("cpu")))
    ids = [tok(t, truncation=True, max_length=64)["input_ids"] for t in texts]
    hashes = [token_hash(i) for i in ids]
    got = store.get(hashes)
    todo = list(dict.fromkeys(h for h, g in zip(hashes, got) if g is None))
    if todo:
        first = {h: i for i, h in reversed(list(enumerate(hashes)))}
        net = _model.TeacherModel(backbone, causal, 1)
        order = sorted(todo, key=lambda h: len(ids[first[h]]))
        states = []
        with torch.no_grad():
            for s in range(0, len(order), batch_size):
                chunk = [ids[first[h]] for h in order[s:s + batch_size]]
                width = max(map(len, chunk))
                x = torch.full((len(chunk), width), tok.pad_token_id, dtype=torch.long)
                m = torch.zeros((len(chunk), width), dtype=torch.long)
                for r, t in enumerate(chunk):
                    x[r, :len(t)], m[r, :len(t)] = torch.tensor(t), 1
                states.append(net.encode(x, m).float().numpy())
        store.put(order, np.concatenate(states))
        fresh = dict(zip(order, np.concatenate(states)))
        got = [g if g is not None else fresh[h] for h, g in zip(hashes, got)]
    return np.stack(got).astype(np.float32) if got else np.zeros((0, 0), np.float32)
