"""One graph, many cohorts: a shared, content-addressed cache of the cohort-free KGE and GNN vectors.

Without Patient/Visit nodes (``patients="none"``, what ``kgrec run`` trains with) the graph the
embeddings see is the open graph plus a few cohort-only codes. The open part does not depend on the
cohort, so its vectors are trained once and kept in a cache folder shared by every workspace
(``$KGREC_CACHE``, default ``$XDG_CACHE_HOME/kgrec`` or ``~/.cache/kgrec``; ``KGREC_CACHE=off`` turns it
off; docs/cache.md):

* :func:`open_tables` removes the cohort from a workspace's graph tables: the nodes and edges whose
  ``source`` is the cohort's (the sources of its Patient/Visit nodes), the edges that pointed at them,
  and the ICD codes (and their categories) that the derived ``icd`` source added only because the cohort
  referenced them. What is left equals ``build_graph(data_dir, None)`` run with the workspace's source
  selection (checked on the MIMIC-III, eICU and Synthea demos), without needing the data folder.
* :func:`canonical_export` puts the training triples in one order, so the same graph gives the same
  export however its tables were read; :func:`export_key` hashes its content (entities, labels,
  relations, train/valid/test triples, split seed).
* An entry ``embed/<stage>-<key>/`` holds the vectors (safetensors), ``index.json``, ``metrics.json`` and
  ``manifest.json`` (the key's inputs, the sha256 of every file, kgrec version, device, creation time).
  The key hashes the export's key, every training keyword argument (arrays by content), the trainer
  module's source and the torch/PyKEEN/PyG versions; the device and the progress display are left out
  (recorded in the manifest): the same settings on a GPU give equivalent, not bit-equal, vectors.
* Entries are written into a temporary folder and renamed into place (the first rename wins), under an
  ``flock`` per entry so two processes do not train the same entry twice. Every read checks the
  manifest's checksums; a corrupt or partial entry is reported, removed and retrained, never used.
* :func:`fill_from_neighbours` maps cached vectors onto a workspace's own export: entities of the
  cohort-free export take their cached vector, cohort-only entities the mean of their trained
  neighbours (1 hop, else 2 hops, along the workspace edges without Patient/Visit), and the rest are
  left out of the workspace's index and counted as missing.

The module is over the ~400-line guide on purpose: stripping the cohort, keying, the locked and
checksummed entries and the neighbour fill are one mechanism whose invariants are checked together.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from kgrec.embed.export import PATIENT_LABELS, GraphExport
from kgrec.errors import WorkspaceError
from kgrec.fsatomic import CACHE_ENV, cache_root, pid_alive  # noqa: F401  (cache_root: re-exported; the rule lives with the file rules)
from kgrec.fsatomic import CACHE_OFF as OFF
from kgrec.graph.tables import GraphTables, isin

FORMAT = 1  # bump when the layout of an entry or the meaning of its key changes
MANIFEST = "manifest.json"
NOT_KEYED = ("progress", "device")  # training kwargs that do not change what is learnt
_TMP = re.compile(r"^\.(?P<name>.+?)\.tmp-(?P<host>[^-]+)-(?P<pid>\d+)-[0-9a-f]{8}$")
_STALE_TMP_AGE = 24 * 3600.0  # seconds: another host's leftovers count as stale after this


class CacheError(WorkspaceError):
    """A cache entry that cannot be used (corrupt, partial, or from another key)."""


# ---------------- where ----------------
def why_not_cached(patients: str, enabled: bool) -> str | None:
    """Why the cohort-free cache cannot serve a stage (None when it can)."""
    if not enabled:
        return "disabled (cache=False / --no-cache)"
    if cache_root() is None:
        return f"disabled ({CACHE_ENV}={OFF})"
    if patients != "none":
        return (f"patients={patients!r}: the training graph holds the cohort's Patient/Visit nodes, so the vectors "
                "depend on the cohort (the cache serves patients='none', as `kgrec run` trains)")
    return None


# ---------------- the cohort-free graph ----------------
def cohort_sources(tables: GraphTables) -> list[str]:
    """The ``source`` values of the Patient/Visit nodes: the cohort(s) the ehr source added."""
    out: set[str] = set()
    for label in PATIENT_LABELS:
        df = tables.nodes.get(label)
        if df is not None and "source" in df:
            out |= {str(s) for s in df["source"].dropna()}
    return sorted(out)


def open_tables(tables: GraphTables) -> tuple[GraphTables, dict]:
    """The workspace graph without its cohort (see the module docstring), and what was removed."""
    from kgrec.graph.schema import load_schema
    from kgrec.graph.sources.icd import IcdSource, derived_ids

    schema = load_schema()
    cohort = cohort_sources(tables)

    def not_cohort(df: pd.DataFrame) -> pd.DataFrame:
        return df[~df["source"].astype(str).isin(cohort).to_numpy()] if cohort and "source" in df else df

    nodes = {k: not_cohort(v) for k, v in tables.nodes.items() if k not in PATIENT_LABELS}
    edges = {k: not_cohort(v) for k, v in tables.edges.items()}
    icd_dropped = 0
    dc = nodes.get("DiagnosisCode")
    if dc is not None and "source" in dc:
        # the icd source defines a node for every ICD code another source references, plus its category:
        # recompute that set without the cohort's references
        derived = dc["source"].astype(str).eq(IcdSource.name).to_numpy()
        seen = set(dc.loc[~derived, "id"].astype(str))
        for rel, df in edges.items():
            spec = schema.relationships[rel]
            if "source" in df:
                df = df[~df["source"].astype(str).eq(IcdSource.name).to_numpy()]
            for end, label in (("src", spec.src), ("dst", spec.dst)):
                if label == "DiagnosisCode":
                    seen.update(df[end].astype(str))
        keep = derived_ids(seen)
        ok = ~derived | dc["id"].astype(str).isin(keep).to_numpy()
        icd_dropped = int((~ok).sum())
        nodes["DiagnosisCode"] = dc[ok]
    ids = {label: df["id"] for label, df in nodes.items()}
    dangling = 0
    for rel, df in edges.items():
        spec = schema.relationships[rel]
        ok = isin(df["src"], ids.get(spec.src, [])) & isin(df["dst"], ids.get(spec.dst, []))
        dangling += int((~ok).sum())
        edges[rel] = df[ok]
    removed_nodes = sum(len(v) for v in tables.nodes.values()) - sum(len(v) for v in nodes.values())
    removed_edges = sum(len(v) for v in tables.edges.values()) - sum(len(v) for v in edges.values())
    report = {"cohort_sources": cohort, "nodes_removed": int(removed_nodes), "edges_removed": int(removed_edges),
              "icd_codes_only_the_cohort_referenced": icd_dropped, "edges_to_cohort_nodes": dangling}
    return GraphTables(nodes, edges), report


def canonical_export(ex: GraphExport) -> GraphExport:
    """The export with its training triples sorted (head, relation, tail): one order for one graph."""
    order = np.lexsort(ex.train.T[::-1])
    return replace(ex, train=np.ascontiguousarray(ex.train[order]), info=dict(ex.info))


def export_key(ex: GraphExport) -> str:
    """sha256 over the export's content: entities, labels, relations, the three triple sets, split seed."""
    h = hashlib.sha256(f"kgrec-export/{FORMAT}\n".encode())
    for part in (ex.entities, ex.labels, ex.relations):
        h.update("\n".join(part).encode())
        h.update(b"\0")
    for arr in (ex.train, ex.valid, ex.test):
        a = np.ascontiguousarray(arr, dtype=np.int64)
        h.update(repr(a.shape).encode())
        h.update(a.tobytes())
    h.update(json.dumps({"seed": ex.info.get("seed")}).encode())
    return h.hexdigest()


# ---------------- keys ----------------
def _digest(arr: np.ndarray) -> dict:
    a = np.ascontiguousarray(arr)
    return {"sha256": hashlib.sha256(a.tobytes()).hexdigest(), "shape": list(a.shape), "dtype": str(a.dtype)}


def keyable(value, name: str = "value"):
    """A JSON value standing for a training keyword argument: plain values as they are, arrays by
    content, result objects (anything with ``entity_vectors``) by their arrays and index. Anything
    else is an error: an argument the key cannot see would let two different trainings share an entry."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [keyable(v, name) for v in value]
    if isinstance(value, dict):
        return {str(k): keyable(v, f"{name}.{k}") for k, v in sorted(value.items())}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return _digest(value)
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        return _digest(value.detach().cpu().numpy())
    if hasattr(value, "entity_vectors"):
        parts = {"type": type(value).__name__, "entity_vectors": _digest(np.asarray(value.entity_vectors))}
        for attr in ("relation_vectors", "relation_vector"):
            if getattr(value, attr, None) is not None:
                parts[attr] = _digest(np.asarray(getattr(value, attr)))
        parts["entities"] = hashlib.sha256("\n".join(value.entities).encode()).hexdigest()
        return parts
    raise TypeError(f"the cache cannot key the training argument {name!r} of type {type(value).__name__}; "
                    "teach kgrec.embed.cache.keyable about it")


def code_fingerprint(module_name: str, libraries: tuple[str, ...]) -> dict:
    """The trainer module's source (sha256) and the versions of the libraries that shape its numbers."""
    import importlib
    from importlib.metadata import PackageNotFoundError, version

    mod = importlib.import_module(module_name)
    out = {"module": module_name, "source_sha256": hashlib.sha256(Path(mod.__file__).read_bytes()).hexdigest()}
    for lib in libraries:
        try:
            out[lib] = version(lib)
        except PackageNotFoundError:
            out[lib] = None
    return out


def entry_key(stage: str, export: str, kwargs: dict, code: dict, extra: dict | None = None) -> tuple[str, dict]:
    """The entry key of a stage (sha256 hex) and the inputs it hashes (kept in the manifest)."""
    settings = {k: keyable(v, k) for k, v in sorted(kwargs.items()) if k not in NOT_KEYED}
    inputs = {"format": FORMAT, "stage": stage, "export": export, "settings": settings, "code": code, **(extra or {})}
    blob = json.dumps(inputs, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(blob.encode()).hexdigest(), inputs


# ---------------- entries ----------------
def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Entry:
    """One cache entry: ``<root>/embed/<stage>-<key[:32]>/``."""

    root: Path
    stage: str
    key: str

    @property
    def name(self) -> str:
        return f"{self.stage}-{self.key[:32]}"

    @property
    def path(self) -> Path:
        return self.root / "embed" / self.name

    def problem(self) -> str | None:
        """Why the entry cannot be used (None: present and intact; ``"absent"``: not there)."""
        p = self.path
        if not p.exists():
            return "absent"
        mf = p / MANIFEST
        if not mf.is_file():
            return f"no {MANIFEST} (a partial or foreign entry)"
        try:
            man = json.loads(mf.read_text())
        except (OSError, ValueError) as exc:
            return f"{MANIFEST} unreadable ({exc})"
        if man.get("key") != self.key or man.get("format") != FORMAT:
            return f"{MANIFEST} is for another key or format"
        files = man.get("files")
        if not isinstance(files, dict) or not files:
            return f"{MANIFEST} lists no files"
        for name, meta in files.items():
            f = p / name
            if not f.is_file():
                return f"{name} is missing"
            if f.stat().st_size != meta.get("bytes"):
                return f"{name} has {f.stat().st_size} bytes, the manifest says {meta.get('bytes')} (truncated?)"
            if _sha256_file(f) != meta.get("sha256"):
                return f"{name} fails its sha256 checksum"
        return None

    def manifest(self) -> dict:
        return json.loads((self.path / MANIFEST).read_text())


def _tmp_name(target: Path) -> Path:
    host = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"
    return target.with_name(f".{target.name}.tmp-{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def sweep(folder: Path) -> list[Path]:
    """Remove temporary entry folders whose writer is gone (this host: its pid no longer runs; another
    host sharing the folder: untouched for a day)."""
    if not folder.is_dir():
        return []
    host = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"
    removed = []
    for p in folder.iterdir():
        m = _TMP.match(p.name)
        if not m:
            continue
        try:
            stale = (not pid_alive(int(m.group("pid")))) if m.group("host") == host else time.time() - p.lstat().st_mtime > _STALE_TMP_AGE
        except FileNotFoundError:
            continue
        if stale:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


@contextmanager
def _locked(entry: Entry, say: Callable[[str], None]) -> Iterator[float]:
    """An exclusive ``flock`` on the entry (``embed/.locks/<name>.lock``); yields the seconds waited."""
    locks = entry.root / "embed" / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(locks / f"{entry.name}.lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"cache: another process is writing {entry.path}; waiting for it")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield time.perf_counter() - t0
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _discard(path: Path) -> None:
    """Move a folder aside (a swept temporary name), then remove it."""
    aside = _tmp_name(path)
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return
    shutil.rmtree(aside, ignore_errors=True)


def write_manifest(folder: Path, key: str, stage: str, inputs: dict, about: dict) -> None:
    """Checksum every file of ``folder`` (fsynced) and write the manifest last."""
    from kgrec import __version__

    files = {}
    for f in sorted(folder.iterdir()):
        if f.is_file() and f.name != MANIFEST:
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
            files[f.name] = {"bytes": f.stat().st_size, "sha256": _sha256_file(f)}
    man = {"format": FORMAT, "stage": stage, "key": key, "inputs": inputs, "files": files, "kgrec_version": __version__,
           "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **about}
    tmp = folder / f".{MANIFEST}.part"
    tmp.write_text(json.dumps(man, indent=1))
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, folder / MANIFEST)


@dataclass
class Fetched:
    """What :func:`fetch_or_build` did: the entry, whether it was already there, and notes."""

    entry: Entry
    hit: bool
    notes: dict = field(default_factory=dict)


def fetch_or_build(entry: Entry, inputs: dict, build: Callable[[Path], dict], say: Callable[[str], None]) -> Fetched:
    """The entry, built by ``build(folder) -> manifest extras`` when it is absent or unusable.

    A corrupt entry is reported through ``say``, removed and rebuilt. The build writes into a temporary
    folder that is renamed into place; if another writer got there first (the rename fails), its entry
    is kept and ours dropped."""
    notes: dict = {}
    why = entry.problem()
    if why is None:
        return Fetched(entry, True, notes)
    with _locked(entry, say) as waited:
        if waited > 1:
            notes["waited_seconds"] = round(waited, 1)
        why = entry.problem()  # another process may have written it while we waited
        if why is None:
            return Fetched(entry, True, notes)
        if why != "absent":
            say(f"cache: {entry.path} is unusable: {why}; removing it and training it again")
            notes["replaced_corrupt_entry"] = why
            _discard(entry.path)
        sweep(entry.path.parent)
        tmp = _tmp_name(entry.path)
        tmp.mkdir(parents=True)
        try:
            about = build(tmp)
            write_manifest(tmp, entry.key, entry.stage, inputs, about)
            try:
                os.rename(tmp, entry.path)
            except OSError:
                if entry.problem() is not None:  # not a lost race: a real error
                    raise
                notes["lost_race"] = True  # another writer (without our lock, e.g. another host) won
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    why = entry.problem()
    if why is not None:
        raise CacheError(f"cache entry {entry.path} is unusable right after writing it: {why}")
    return Fetched(entry, False, notes)


def store_export(root: Path, ex: GraphExport, key: str, say: Callable[[str], None]) -> Entry:
    """Keep the cohort-free export beside the vectors trained on it (``embed/export-<key>/``)."""
    entry = Entry(root, "export", key)

    def build(folder: Path) -> dict:
        ex.save(folder)
        return {"n_entities": len(ex.entities), "n_train_triples": int(len(ex.train))}

    fetch_or_build(entry, {"format": FORMAT, "stage": "export", "export": key}, build, say)
    return entry


# ---------------- onto a workspace ----------------
@dataclass
class Mapped:
    """Cached vectors laid onto a workspace export: ``rows`` (workspace entity positions kept, in order)
    and one matrix per input, plus the counts."""

    rows: np.ndarray
    mats: list[np.ndarray]
    from_cache: int
    filled: dict[int, int]
    missing: list[str]

    @property
    def filled_total(self) -> int:
        return int(sum(self.filled.values()))


def fill_from_neighbours(ws: GraphExport, entities: list[str], mats: list[np.ndarray], hops: int = 2) -> Mapped:
    """Lay vectors over ``entities`` (the cohort-free index) onto the workspace export ``ws``.

    A workspace entity in ``entities`` takes its vector. One that is not takes the mean of the trained
    entities one hop away along the workspace's training triples (both directions); failing that, of
    those two hops away (weighted by the number of paths). The others are missing: left out."""
    from scipy import sparse

    pos = {e: i for i, e in enumerate(entities)}
    src = np.array([pos.get(e, -1) for e in ws.entities], dtype=np.int64)
    known = src >= 0
    n = len(ws.entities)
    full = []
    for m in mats:
        x = np.zeros((n, m.shape[1]), dtype=np.float32)
        x[known] = m[src[known]]
        full.append(x)
    filled: dict[int, int] = {}
    need = ~known
    if need.any() and len(ws.train):
        h, t = ws.train[:, 0], ws.train[:, 2]
        h, t = h[h != t], t[h != t]
        a = sparse.csr_matrix((np.ones(2 * len(h), dtype=np.float32), (np.concatenate([h, t]), np.concatenate([t, h]))), shape=(n, n))
        a.data[:] = 1.0  # parallel edges were summed: one per neighbour
        trained = known.astype(np.float32)
        sums_in = [x * trained[:, None] for x in full]  # only trained vectors are averaged
        for k in range(1, hops + 1):
            if not need.any():
                break
            rows_idx = np.flatnonzero(need)
            paths = a[rows_idx]  # paths of length k from the entities still without a vector
            for _ in range(k - 1):
                paths = paths @ a
            cnt = np.asarray(paths @ trained).ravel()
            ok = cnt > 0
            if ok.any():
                sel = paths[np.flatnonzero(ok)]
                for x, s in zip(full, sums_in):
                    x[rows_idx[ok]] = np.asarray(sel @ s) / cnt[ok, None]
            filled[k] = int(ok.sum())
            need = need.copy()
            need[rows_idx[ok]] = False
    keep = ~need
    rows = np.flatnonzero(keep)
    return Mapped(rows, [x[rows] for x in full], int(known.sum()), filled, [ws.entities[i] for i in np.flatnonzero(need)])
