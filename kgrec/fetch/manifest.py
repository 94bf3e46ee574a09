"""The manifest: one :class:`Source` per file (validated on load), :class:`Manifest`, :func:`load_manifest`."""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from kgrec.errors import InputError, KgrecError
from kgrec.fetch.base import ARCHIVES, SCHEMES, _ALLOWED, _NAME_RE, _OPTIONAL, _REQUIRED, _SHA_RE


@dataclass(frozen=True)
class Source:
    """One manifest entry: a file to download (and maybe unpack) into the cache folder."""

    name: str
    url: str
    dest: str
    licence: str
    nc: bool
    sha256: str | None
    archive: str | None
    notes: str = ""
    homepage: str | None = None
    members: dict[str, str] | None = None
    strip_components: int = 0

    @property
    def verified(self) -> bool:
        """True when the manifest gives a checksum to verify the download against."""
        return self.sha256 is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Manifest:
    sources: tuple[Source, ...]
    path: Path | None = None

    def __iter__(self) -> Iterator[Source]:
        return iter(self.sources)

    def __len__(self) -> int:
        return len(self.sources)

    def names(self) -> list[str]:
        return [s.name for s in self.sources]

    def get(self, name: str) -> Source:
        for s in self.sources:
            if s.name == name:
                return s
        raise KgrecError(f"no source named {name!r} in the manifest; known: {', '.join(self.names())}")


def default_manifest_path() -> Path:
    return Path(str(resources.files("kgrec") / "data" / "manifest.yaml"))


def load_manifest(path: str | os.PathLike | None = None) -> Manifest:
    """Read and validate a manifest (default: the one shipped with kgrec).

    Raises :class:`~kgrec.errors.InputError` naming the file and the entry for unknown or missing keys,
    a bad sha256, archive type, URL scheme or destination path, and duplicate names or destinations.
    """
    p = Path(path) if path is not None else default_manifest_path()
    if not p.is_file():
        raise InputError("manifest not found", path=p)
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(f"not a readable YAML manifest ({exc})", path=p) from exc
    if isinstance(doc, dict):
        extra = set(doc) - {"sources", "version"}
        if extra:
            raise InputError(f"unknown top-level key(s) {sorted(extra)} (allowed: version, sources)", path=p)
        entries = doc.get("sources")
    else:
        entries = doc
    if not isinstance(entries, list) or not entries:
        raise InputError("the manifest must hold a non-empty list 'sources:' of entries", path=p)

    sources: list[Source] = []
    seen_names: set[str] = set()
    seen_dests: dict[str, str] = {}
    for i, raw in enumerate(entries, start=1):
        src = _validate_entry(raw, i, p)
        if src.name in seen_names:
            raise InputError(f"entry #{i}: duplicate name {src.name!r}", path=p)
        seen_names.add(src.name)
        for out in _declared_outputs(src):
            key = out.lower()
            if key in seen_dests:
                raise InputError(
                    f"entry {src.name!r}: destination {out!r} is also written by entry {seen_dests[key]!r}", path=p
                )
            seen_dests[key] = src.name
        sources.append(src)
    return Manifest(tuple(sources), p)


def _validate_entry(raw: Any, i: int, p: Path) -> Source:
    label = f"entry #{i}"
    if not isinstance(raw, dict):
        raise InputError(f"{label}: expected a mapping of keys (name, url, dest, ...), got {type(raw).__name__}", path=p)
    name = raw.get("name")
    if isinstance(name, str) and name:
        label = f"entry {name!r} (#{i})"

    def bad(msg: str) -> InputError:
        return InputError(f"{label}: {msg}", path=p)

    unknown = sorted(set(raw) - _ALLOWED)
    if unknown:
        raise bad(f"unknown key(s) {unknown} (allowed: {', '.join(_REQUIRED + _OPTIONAL)})")
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise bad(f"missing key(s) {missing}")

    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise bad("'name' must be lower-case letters, digits, '.', '_' or '-' (e.g. mimic-iii-demo)")
    url = raw["url"]
    if not isinstance(url, str) or not url.strip():
        raise bad("'url' is empty")
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in SCHEMES:
        raise bad(f"'url' must start with {', '.join(s + '://' for s in SCHEMES)} (got {url!r})")
    dest = raw["dest"]
    if not isinstance(dest, str) or not dest.strip():
        raise bad("'dest' is empty")
    dest_clean = _safe_relpath(dest)
    if dest_clean is None:
        raise bad(f"'dest' must be a relative path inside the cache folder without '..' (got {dest!r})")
    licence = raw["licence"]
    if not isinstance(licence, str) or not licence.strip():
        raise bad("'licence' is empty: record the licence (or 'no licence stated')")
    nc = raw["nc"]
    if not isinstance(nc, bool):
        raise bad(f"'nc' must be true or false (got {nc!r})")
    sha = raw["sha256"]
    if sha is not None:
        if not isinstance(sha, str) or not _SHA_RE.match(sha.strip().lower()):
            raise bad(f"'sha256' must be 64 hexadecimal digits or null (got {sha!r})")
        sha = sha.strip().lower()
    archive = raw["archive"]
    if archive not in ARCHIVES:
        raise bad(f"'archive' must be null, zip or gz (got {archive!r})")
    notes = raw.get("notes") or ""
    if not isinstance(notes, str):
        raise bad("'notes' must be text")
    homepage = raw.get("homepage")
    if homepage is not None and not isinstance(homepage, str):
        raise bad("'homepage' must be a URL")
    members = raw.get("members")
    if members is not None:
        if archive != "zip":
            raise bad("'members' is only allowed with archive: zip")
        if not isinstance(members, dict) or not members:
            raise bad("'members' must map member names in the zip to paths under dest")
        clean: dict[str, str] = {}
        for m, target in members.items():
            t = _safe_relpath(target) if isinstance(target, str) else None
            if not isinstance(m, str) or not m or t is None:
                raise bad(f"'members': {m!r} -> {target!r} is not a member name and a relative path without '..'")
            clean[m] = t
        members = clean
    strip = raw.get("strip_components", 0)
    if strip is None:
        strip = 0
    if not isinstance(strip, int) or isinstance(strip, bool) or strip < 0:
        raise bad(f"'strip_components' must be a whole number >= 0 (got {strip!r})")
    if strip and archive != "zip":
        raise bad("'strip_components' is only allowed with archive: zip")
    return Source(
        name=name,
        url=url.strip(),
        dest=dest_clean,
        licence=licence.strip(),
        nc=nc,
        sha256=sha,
        archive=archive,
        notes=" ".join(notes.split()),
        homepage=homepage,
        members=members,
        strip_components=strip,
    )


def _safe_relpath(path: str) -> str | None:
    """Normalised POSIX relative path, or None if it is absolute, empty or climbs out with '..'."""
    s = path.replace("\\", "/").strip()
    if not s or s.startswith("/") or re.match(r"^[A-Za-z]:", s):
        return None
    parts = [p for p in PurePosixPath(s).parts if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        return None
    return "/".join(parts)


def _declared_outputs(src: Source) -> list[str]:
    if src.archive == "zip":
        if src.members:
            return [f"{src.dest}/{t}" for t in src.members.values()]
        return []  # whole-archive unpack: outputs known only from the archive itself
    return [src.dest]
