"""Constants shared by the fetcher's modules, and :class:`FetchError`."""

from __future__ import annotations

import re

from kgrec.errors import KgrecError
from kgrec.fetch.result import FetchResult


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
