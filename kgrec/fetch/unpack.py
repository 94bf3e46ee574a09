"""Unpacking a downloaded archive (``zip`` members or ``gz``) safely: only listed members, no path escaping the destination."""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import tempfile
import zipfile
from pathlib import Path

from kgrec.errors import KgrecError
from kgrec.fetch.base import CHUNK
from kgrec.fetch.download import _finish
from kgrec.fetch.manifest import Source, _safe_relpath


def _unpack_plan(src: Source, arch: Path) -> list[tuple[str | None, str]]:
    """(zip member, output path relative to the cache) for every file to write. Raises on unsafe members."""
    if src.archive == "gz":
        return [(None, src.dest)]
    try:
        zf = zipfile.ZipFile(arch)
    except (zipfile.BadZipFile, OSError) as exc:
        raise KgrecError(f"{arch.name} from {src.url} is not a readable zip file ({exc})") from None
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        for info in zf.infolist():  # reject unsafe members before anything is written
            if _safe_relpath(info.filename) is None or ".." in info.filename.replace("\\", "/").split("/"):
                raise KgrecError(f"{arch.name} from {src.url}: unsafe member path {info.filename!r} "
                                 "(absolute or climbing out with '..'); nothing was unpacked")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise KgrecError(f"{arch.name} from {src.url}: member {info.filename!r} is a symbolic link; "
                                 "nothing was unpacked")
        plan: list[tuple[str | None, str]] = []
        if src.members:
            for want, target in src.members.items():
                info = _find_member(infos, want)
                if info is None:
                    listing = ", ".join(i.filename for i in infos[:20]) + (" ..." if len(infos) > 20 else "")
                    raise KgrecError(f"{arch.name} from {src.url} has no member {want!r} (it holds: {listing})")
                plan.append((info.filename, f"{src.dest}/{target}"))
        else:
            for info in infos:
                parts = _safe_relpath(info.filename).split("/")[src.strip_components:]
                if not parts:
                    continue
                plan.append((info.filename, f"{src.dest}/{'/'.join(parts)}"))
            if not plan:
                raise KgrecError(f"{arch.name} from {src.url} holds no files to unpack")
        seen: set[str] = set()
        for _, rel in plan:
            if rel.lower() in seen:
                raise KgrecError(f"{arch.name} from {src.url}: two members unpack to {rel!r}")
            seen.add(rel.lower())
        return plan


def _find_member(infos: list[zipfile.ZipInfo], want: str) -> zipfile.ZipInfo | None:
    norm = want.replace("\\", "/").strip("/")
    for info in infos:
        if info.filename == norm:
            return info
    for cmp in (lambda s: s, str.lower):
        hits = [i for i in infos if cmp(i.filename).endswith("/" + cmp(norm)) or cmp(i.filename) == cmp(norm)]
        if len(hits) == 1:
            return hits[0]
    return None


def _unpack(src: Source, arch: Path, dest: Path, plan: list[tuple[str | None, str]]) -> dict[str, str]:
    """Write every planned output through a temp file + atomic rename; return their sha256."""
    hashes: dict[str, str] = {}
    if src.archive == "gz":
        (member, rel), = plan
        try:
            with gzip.open(arch, "rb") as fin:
                hashes[rel] = _write_atomic(dest / rel, fin)
        except (OSError, EOFError) as exc:
            raise KgrecError(f"{arch.name} from {src.url} is not a readable gzip file ({exc})") from None
        return hashes
    with zipfile.ZipFile(arch) as zf:
        for member, rel in plan:
            target = dest / rel  # rel was checked lexically: relative, no '..' (symlink members are refused)
            try:
                with zf.open(member) as fin:
                    hashes[rel] = _write_atomic(target, fin)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise KgrecError(f"{arch.name} from {src.url}: cannot unpack {member!r} ({exc})") from None
    return hashes


def _write_atomic(target: Path, fin) -> str:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in iter(lambda: fin.read(CHUNK), b""):
                out.write(chunk)
                h.update(chunk)
        _finish(tmp, target)
        return h.hexdigest()
    finally:
        if tmp.exists():
            tmp.unlink()
