"""Download the open data sources listed in a manifest into a local cache folder, verifying checksums.

The manifest (``kgrec/data/manifest.yaml`` unless another is given) lists one entry per file:

``name``
    short id used on the command line (``--source NAME``): lower case, digits, ``.``, ``_``, ``-``.
``url``
    where to download it (``https://``, ``http://`` or ``file://``).
``dest``
    where it lands, relative to the cache folder. For ``archive: zip`` this is a folder to unpack into;
    for ``archive: gz`` the unpacked file; otherwise the downloaded file itself.
``licence``, ``nc``
    the licence text and whether it forbids commercial use (``--exclude-nc`` skips those).
``sha256``
    the expected SHA-256 of the downloaded bytes (64 hex digits), or ``null`` when no trusted hash is
    known. Entries without one are fetched only with ``allow_unverified=True`` and logged as unverified.
``archive``
    ``null`` (keep as downloaded), ``zip`` or ``gz`` (unpack). The downloaded archive itself is kept
    under ``<cache>/_downloads/<name>/`` so that later runs can skip it.
``members`` (zip only, optional)
    ``{member in the zip: path under dest}``: unpack only these members, under these names. A member
    is found by its exact path, else by a unique path ending in ``/<member>`` (any case).
``strip_components`` (zip only, optional)
    drop this many leading folders from every member path (like ``tar --strip-components``).
``homepage``, ``notes`` (optional)
    where a person can read about (and download by hand) the source, and anything a user must know.

Every download goes to a temporary file in the destination folder and is renamed into place only once
complete and verified, so an interrupted or failed download never leaves a partial file behind. No
proxy settings are read and nothing but the listed URLs is contacted. ``<cache>/fetch-log.json``
records, for each entry, the URL, hash, licence, time and the files written.

Files that ``fetch`` did not write itself (not recorded in the log) are never overwritten unless
``force=True``: they are reported as conflicts instead.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import os
import re
import stat
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from kgrec.errors import InputError, KgrecError

__all__ = [
    "FetchError",
    "FetchItem",
    "FetchResult",
    "Manifest",
    "Source",
    "fetch",
    "load_manifest",
    "LOG_NAME",
    "DOWNLOADS_DIR",
]

LOG_NAME = "fetch-log.json"
DOWNLOADS_DIR = "_downloads"
ARCHIVES = (None, "zip", "gz")
SCHEMES = ("http", "https", "file")
TIMEOUT_S = 60.0
CHUNK = 1 << 20
USER_AGENT = "kgrec-fetch-data/0.1 (research data download)"

_REQUIRED = ("name", "url", "dest", "licence", "nc", "sha256", "archive")
_OPTIONAL = ("notes", "homepage", "members", "strip_components")
_ALLOWED = frozenset(_REQUIRED + _OPTIONAL)
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


class FetchError(KgrecError):
    """One or more downloads failed (network, checksum, unsafe archive). ``result`` holds what was done."""

    def __init__(self, message: str, result: FetchResult | None = None):
        super().__init__(message)
        self.result = result


# --------------------------------------------------------------------------------------------- manifest


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


# ------------------------------------------------------------------------------------------------ result


@dataclass
class FetchItem:
    """What happened to one manifest entry.

    ``status``: ``downloaded`` (fetched now), ``present`` (already there and intact; nothing fetched),
    ``excluded`` (non-commercial, skipped by exclude_nc), ``refused`` (no checksum in the manifest and
    allow_unverified not given), ``conflict`` (a file fetch-data did not write is in the way; use force)
    or ``failed`` (see ``error``).
    """

    name: str
    status: str
    url: str
    licence: str
    nc: bool
    verified: bool = False
    sha256: str | None = None
    files: list[str] = field(default_factory=list)
    bytes: int = 0
    error: str | None = None
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FetchResult:
    dest_dir: Path
    items: list[FetchItem] = field(default_factory=list)
    log_path: Path | None = None

    def _with(self, status: str) -> list[FetchItem]:
        return [i for i in self.items if i.status == status]

    @property
    def downloaded(self) -> list[FetchItem]:
        return self._with("downloaded")

    @property
    def present(self) -> list[FetchItem]:
        return self._with("present")

    @property
    def excluded(self) -> list[FetchItem]:
        return self._with("excluded")

    @property
    def refused(self) -> list[FetchItem]:
        return self._with("refused")

    @property
    def conflicts(self) -> list[FetchItem]:
        return self._with("conflict")

    @property
    def failed(self) -> list[FetchItem]:
        return self._with("failed")

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for i in self.items:
            counts[i.status] = counts.get(i.status, 0) + 1
        return {
            "dest_dir": str(self.dest_dir),
            "log": str(self.log_path) if self.log_path else None,
            "counts": counts,
            "items": [i.to_dict() for i in self.items],
        }


# ------------------------------------------------------------------------------------------------- fetch


def fetch(
    dest_dir: str | os.PathLike,
    names: Iterable[str] | None = None,
    manifest: Manifest | str | os.PathLike | None = None,
    force: bool = False,
    exclude_nc: bool = False,
    allow_unverified: bool = False,
    progress: bool = True,
    timeout: float = TIMEOUT_S,
) -> FetchResult:
    """Download the manifest's sources (or only ``names``) into ``dest_dir``.

    Already-present files whose hash matches are skipped, so a second run downloads nothing. Entries
    without a sha256 are refused unless ``allow_unverified``: naming one explicitly in ``names`` raises
    at once, fetching everything just reports it as refused. ``force`` re-downloads everything and
    overwrites files fetch-data did not write. Failures (network, checksum mismatch, unsafe archive)
    do not stop the other entries; at the end a :class:`FetchError` lists them (``.result`` holds the
    per-entry outcome). ``<dest_dir>/fetch-log.json`` is updated after every entry.
    """
    man = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    dest = Path(dest_dir).expanduser()
    if dest.exists() and not dest.is_dir():
        raise InputError("the cache folder is a file, not a folder", path=dest)

    explicit = names is not None
    if names is not None:
        wanted = list(dict.fromkeys(names))
        if not wanted:
            raise KgrecError("no source names given")
        unknown = [n for n in wanted if n not in man.names()]
        if unknown:
            raise KgrecError(f"unknown source(s) {unknown}; known: {', '.join(man.names())}")
        selected = [man.get(n) for n in wanted]
    else:
        selected = list(man.sources)

    if explicit and not allow_unverified:
        unverified = [s.name for s in selected if not s.verified and not (exclude_nc and s.nc)]
        if unverified:
            raise KgrecError(
                f"no sha256 in the manifest for {', '.join(unverified)}: the download cannot be verified. "
                "Pass --allow-unverified (allow_unverified=True) to fetch it anyway; it is then logged as unverified."
            )

    dest.mkdir(parents=True, exist_ok=True)
    log = _Log(dest / LOG_NAME)
    result = FetchResult(dest_dir=dest, log_path=log.path)
    console = Console(stderr=True)
    opener = _opener()

    with _progress(progress, console) as bar:
        for src in selected:
            item = FetchItem(name=src.name, status="failed", url=src.url, licence=src.licence, nc=src.nc,
                             notes=src.notes)
            result.items.append(item)
            if exclude_nc and src.nc:
                item.status = "excluded"
                continue
            if not src.verified and not allow_unverified:
                item.status = "refused"
                item.error = "no sha256 in the manifest; pass --allow-unverified to fetch it unverified"
                continue
            try:
                _fetch_one(src, dest, log, item, opener=opener, force=force, bar=bar, timeout=timeout)
            except KgrecError as exc:
                item.status = "failed"
                item.error = str(exc)
            log.save()

    if result.failed:
        lines = "\n".join(f"  {i.name}: {i.error}" for i in result.failed)
        raise FetchError(f"{len(result.failed)} source(s) failed:\n{lines}", result=result)
    return result


def _fetch_one(src: Source, dest: Path, log: _Log, item: FetchItem, *, opener, force: bool, bar, timeout: float
               ) -> None:
    item.verified = src.verified
    if src.archive is None:
        target = dest / src.dest
        state = _existing_state(target, src, log, dest)
        if state == "ok" and not force:
            item.status, item.sha256 = "present", _sha256_file(target)
            item.files = [src.dest]
            log.record(src, item.sha256, [src.dest], {src.dest: item.sha256}, download=src.dest, touched=False)
            return
        if state == "foreign" and not force:
            item.status = "conflict"
            item.files = [src.dest]
            item.error = (f"{target} exists, was not written by fetch-data and does not match the manifest; "
                          "kept it (use --force to replace it)")
            return
        sha, n = _download(src, target, opener=opener, bar=bar, timeout=timeout)
        item.status, item.sha256, item.bytes, item.files = "downloaded", sha, n, [src.dest]
        log.record(src, sha, [src.dest], {src.dest: sha}, download=src.dest, touched=True)
        return

    # archives: keep the download under _downloads/<name>/, unpack into dest
    arch_rel = f"{DOWNLOADS_DIR}/{src.name}/{_url_basename(src.url, src.archive)}"
    arch = dest / arch_rel
    state = _existing_state(arch, src, log, dest, is_archive=True)
    fetched_now = False
    if state == "ok" and not force:
        sha = _sha256_file(arch)
    else:
        sha, n = _download(src, arch, opener=opener, bar=bar, timeout=timeout)
        item.bytes = n
        fetched_now = True
    item.sha256 = sha

    plan = _unpack_plan(src, arch)  # list of (member or None, relative output path)
    outputs = [rel for _, rel in plan]
    owned = log.owned_files()
    foreign = []
    missing_or_changed = []
    for rel in outputs:
        p = dest / rel
        if not p.exists():
            missing_or_changed.append(rel)
            continue
        actual = _sha256_file(p)
        if owned.get(rel) == actual:
            continue  # written by an earlier run and unchanged
        missing_or_changed.append(rel)
        foreign.append(rel)
    if foreign and not force:
        item.status = "conflict"
        item.files = outputs
        shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        item.error = (f"{len(foreign)} file(s) to unpack already exist and were not written by fetch-data "
                      f"({shown}); kept them (use --force to replace them)")
        log.record(src, sha, [], {}, download=arch_rel, touched=fetched_now)
        return
    if missing_or_changed or fetched_now or force:
        file_hashes = _unpack(src, arch, dest, plan)
    else:
        file_hashes = {rel: owned[rel] for rel in outputs}
    item.files = outputs
    item.status = "downloaded" if fetched_now else "present"
    log.record(src, sha, outputs, file_hashes, download=arch_rel, touched=fetched_now or bool(missing_or_changed))


def _existing_state(path: Path, src: Source, log: _Log, dest: Path, is_archive: bool = False) -> str:
    """'missing', 'ok' (intact: matches the manifest hash, or for unverified entries the hash logged when
    fetch-data wrote it), 'ours' (written by fetch-data but changed or outdated: safe to replace) or
    'foreign' (someone else's file that does not match)."""
    if not path.is_file():
        return "missing"
    actual = _sha256_file(path)
    rel = path.relative_to(dest).as_posix()
    logged = log.download_sha(src.name, rel)
    if src.sha256 is not None:
        if actual == src.sha256:
            return "ok"
    elif logged is not None and logged == actual and log.entry_url(src.name) == src.url:
        return "ok"
    if is_archive or logged == actual or log.owned_files().get(rel) == actual:
        return "ours"
    return "foreign"


# --------------------------------------------------------------------------------------------- download


class _NoProxyRedirect(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to http(s) URLs (never to file:// or other schemes)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlsplit(newurl).scheme.lower() not in ("http", "https"):
            raise urllib.error.HTTPError(newurl, code, f"refusing redirect to {newurl!r}", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener() -> urllib.request.OpenerDirector:
    # ProxyHandler({}) : ignore *_proxy environment variables -- talk to the listed host only.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoProxyRedirect())


def _download(src: Source, target: Path, *, opener, bar, timeout: float) -> tuple[str, int]:
    """Stream ``src.url`` into a temp file beside ``target``, verify, then rename atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    h = hashlib.sha256()
    n = 0
    try:
        req = urllib.request.Request(src.url, headers={"User-Agent": USER_AGENT})
        try:
            resp = opener.open(req, timeout=timeout)
        except urllib.error.HTTPError as exc:
            raise KgrecError(f"download of {src.url} failed: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise KgrecError(f"download of {src.url} failed: {reason}") from None
        with resp, os.fdopen(fd, "wb") as out:
            fd = -1
            total = resp.headers.get("Content-Length") if hasattr(resp, "headers") else None
            task = bar.add_task(src.name, total=int(total) if total and total.isdigit() else None) if bar else None
            try:
                while True:
                    chunk = resp.read(CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    h.update(chunk)
                    n += len(chunk)
                    if task is not None:
                        bar.update(task, advance=len(chunk))
            except (OSError, urllib.error.URLError, http.client.HTTPException) as exc:  # timeouts, resets
                raise KgrecError(f"download of {src.url} broke off after {n} bytes: {exc}") from None
            finally:
                if task is not None:
                    bar.remove_task(task)
            if total and total.isdigit() and int(total) != n:
                raise KgrecError(f"download of {src.url} is incomplete: got {n} of {total} bytes")
        actual = h.hexdigest()
        if src.sha256 is not None and actual != src.sha256:
            raise KgrecError(
                f"checksum mismatch for {target.name} from {src.url}: expected sha256 {src.sha256}, "
                f"got {actual}. The downloaded file was deleted. The upstream file may have changed, or the "
                "download was tampered with; check the source before updating the manifest."
            )
        _finish(tmp, target)
        return actual, n
    finally:
        if fd != -1:
            os.close(fd)
        if tmp.exists():
            tmp.unlink()


def _url_basename(url: str, archive: str | None) -> str:
    base = PurePosixPath(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name
    base = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".") or "download"
    ext = {"zip": ".zip", "gz": ".gz"}.get(archive or "", "")
    if ext and not base.lower().endswith(ext):
        base += ext
    return base


def _progress(enabled: bool, console: Console):
    if not enabled:
        return _NullCtx()
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


class _NullCtx:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _umask() -> int:
    old = os.umask(0o022)
    os.umask(old)
    return old


def _finish(tmp: Path, target: Path) -> None:
    """Give the temp file ordinary permissions (mkstemp makes it 0600) and move it into place atomically."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, target)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------- unpack


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


# ------------------------------------------------------------------------------------------------- log


class _Log:
    """``fetch-log.json``: per entry, where it came from, its hash and licence, and the files written."""

    def __init__(self, path: Path):
        self.path = path
        self.data: dict[str, Any] = {"kgrec_fetch_log": 1, "entries": {}}
        if path.is_file():
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(loaded, dict) and isinstance(loaded.get("entries"), dict):
                    self.data = loaded
            except (OSError, ValueError):
                pass  # an unreadable log is rebuilt; files it named are then treated as not ours

    @property
    def entries(self) -> dict[str, Any]:
        return self.data["entries"]

    def entry_url(self, name: str) -> str | None:
        e = self.entries.get(name)
        return e.get("url") if isinstance(e, dict) else None

    def download_sha(self, name: str, rel: str) -> str | None:
        e = self.entries.get(name)
        if isinstance(e, dict) and e.get("download") == rel:
            return e.get("sha256")
        return None

    def owned_files(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for e in self.entries.values():
            if isinstance(e, dict) and isinstance(e.get("files"), dict):
                out.update({k: v for k, v in e["files"].items() if isinstance(v, str)})
        return out

    def record(self, src: Source, sha: str, outputs: list[str], file_hashes: dict[str, str], *,
               download: str, touched: bool) -> None:
        old = self.entries.get(src.name) if isinstance(self.entries.get(src.name), dict) else {}
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.entries[src.name] = {
            "url": src.url,
            "sha256": sha,
            "verified": src.sha256 is not None and sha == src.sha256,
            "licence": src.licence,
            "nc": src.nc,
            "archive": src.archive,
            "download": download,
            "files": {rel: file_hashes.get(rel) for rel in outputs},
            "time": now if touched or not old.get("time") else old["time"],
            "checked": now,
        }

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".fetch-log.", suffix=".part", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.data, f, indent=2, sort_keys=True)
                f.write("\n")
            _finish(Path(tmp), self.path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
