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
Modules: :mod:`~kgrec.fetch.manifest` (entries, validation), :mod:`~kgrec.fetch.run` (:func:`fetch`),
:mod:`~kgrec.fetch.download`, :mod:`~kgrec.fetch.unpack`, :mod:`~kgrec.fetch.log` (``fetch-log.json``),
:mod:`~kgrec.fetch.result`, :mod:`~kgrec.fetch.base` (constants, :class:`FetchError`).
"""

from __future__ import annotations

from kgrec.fetch.base import DOWNLOADS_DIR, LOG_NAME, FetchError
from kgrec.fetch.manifest import Manifest, Source, default_manifest_path, load_manifest
from kgrec.fetch.result import FetchItem, FetchResult
from kgrec.fetch.run import fetch

__all__ = [
    "DOWNLOADS_DIR", "LOG_NAME", "FetchError", "FetchItem", "FetchResult", "Manifest", "Source", "default_manifest_path",
    "fetch", "load_manifest",
]
