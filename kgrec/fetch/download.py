"""Downloading one URL to a temporary file (no proxies, redirects checked), hashing it, and the atomic rename into place."""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from kgrec.errors import KgrecError
from kgrec.fetch.base import CHUNK, USER_AGENT
from kgrec.fetch.manifest import Source


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
