""":func:`fetch`: fetch the selected entries (skip what is current, refuse to overwrite foreign files, verify, unpack, log)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from rich.console import Console

from kgrec.errors import InputError, KgrecError
from kgrec.fetch.base import DOWNLOADS_DIR, LOG_NAME, TIMEOUT_S, FetchError
from kgrec.fetch.download import _download, _opener, _progress, _sha256_file, _url_basename
from kgrec.fetch.log import _Log
from kgrec.fetch.manifest import Manifest, Source, load_manifest
from kgrec.fetch.result import FetchItem, FetchResult
from kgrec.fetch.unpack import _unpack, _unpack_plan


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
