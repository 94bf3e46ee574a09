"""``fetch-log.json``: per entry, where it came from, its hash and licence, and the files written."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from kgrec.fetch.download import _finish
from kgrec.fetch.manifest import Source


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
