"""What a fetch did: one :class:`FetchItem` per entry, gathered in a :class:`FetchResult`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


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
