"""Atomic replacement of workspace artefacts, and the sweep of what a killed process left behind.

Every folder or file that kgrec replaces (the cohort folder, the graph tables, the embedded graph
file) is first written completely beside its target under a name that carries the writer's pid
(``.cohort.tmp-<pid>-<rand>``, ``.embedded.lbug.build-<pid>-<rand>``), then swapped in here:

* :func:`replace_dir` exchanges the two folders in one ``renameat2(RENAME_EXCHANGE)`` call (Linux),
  so the target always exists, old or new, then removes the old one. Where the exchange is not
  available it falls back to two renames; a crash between them leaves ``.<name>.old-<pid>-<rand>``,
  which :func:`sweep` puts back.
* :func:`commit` swaps several artefacts that must come from one build (the graph file and its
  tables) under a journal, ``.commit.json``: written once every new artefact is complete, removed once
  all are swapped. A process killed in between leaves the journal, and :func:`recover` (called by the
  next load and by every reader) finishes the swaps, so the graph file and the tables are never from
  two builds.
  Commits and recoveries take turns under an ``flock`` on the folder.
* :func:`sweep` removes the temporary and build files of processes that no longer run (and, for names
  without a pid from older versions, ones untouched for an hour).

Before (issue 16, items 4 and 5): ``GraphTables.save`` deleted the live folder before renaming the new
one in, the graph file was swapped before the tables were saved, and leftovers of killed loads (34 MB
each) piled up.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path

from kgrec.errors import WorkspaceError

JOURNAL = ".commit.json"
_TAGS = ("tmp", "old", "build")
_STALE = re.compile(r"^\.(?P<name>.+?)\.(?P<tag>tmp|old|build)-(?P<rest>.+)$")
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_NO_PID_AGE = 3600.0  # seconds: leftovers without a pid (older kgrec) count as stale after this

_libc = None


CACHE_ENV = "KGREC_CACHE"
CACHE_OFF = "off"


def cache_root() -> Path | None:
    """The shared cache folder (``$KGREC_CACHE``, else ``$XDG_CACHE_HOME/kgrec``, else ``~/.cache/kgrec``);
    None when ``KGREC_CACHE=off`` (docs/cache.md)."""
    env = os.environ.get(CACHE_ENV, "").strip()
    if env.lower() == CACHE_OFF:
        return None
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".cache") / "kgrec"


def _renameat2():
    global _libc
    if _libc is None:
        try:
            lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            fn = lib.renameat2
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            _libc = fn
        except (OSError, AttributeError):
            _libc = False
    return _libc or None


def exchange(a: Path, b: Path) -> bool:
    """Swap ``a`` and ``b`` atomically (both must exist); False where the system cannot."""
    fn = _renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), str(a))


def temp_path(target: Path, tag: str = "tmp") -> Path:
    """A sibling name for a new version of ``target``: ``.<name>.<tag>-<pid>-<rand>``."""
    target = Path(target)
    return target.with_name(f".{target.name}.{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def temp_dir(target: Path) -> Path:
    """Create and return an empty sibling folder to build a new version of ``target`` in."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    path = temp_path(target, "tmp")
    path.mkdir()
    return path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


_INTERRUPT_REQUESTED = False


def request_interrupt() -> None:
    """Called by kgrec's Ctrl-C handler (:mod:`kgrec.__main__`): from now on no commit point publishes."""
    global _INTERRUPT_REQUESTED
    _INTERRUPT_REQUESTED = True


def check_interrupt() -> None:
    """Raise KeyboardInterrupt if Ctrl-C was pressed. Every commit point below calls it first, so a write
    that Ctrl-C should have stopped is never put in place, even when a library swallowed the interrupt
    (C code that clears any error, a callback whose exceptions CPython ignores) and the work went on."""
    if _INTERRUPT_REQUESTED:
        raise KeyboardInterrupt


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def umask_modes(path: Path) -> None:
    """One permission policy for everything kgrec writes: the user's umask (files ``0o666 & ~umask``,
    folders ``0o777 & ~umask``), also for what libraries create private (safetensors writes 0600,
    ``tempfile.mkdtemp`` 0700), so another account allowed to read the workspace reads all of it."""
    path = Path(path)
    mask = _umask()
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        if p.is_symlink():
            continue
        try:
            os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~mask)
        except OSError:
            pass  # not ours to change (another owner): left as it is


def replace_dir(new: Path, target: Path) -> None:
    """Put the complete folder ``new`` in place of ``target`` (which may not exist): readers see the old
    folder or the new one, never neither. Stale leftovers beside ``target`` are swept first; the new
    folder's modes follow the umask (:func:`umask_modes`)."""
    check_interrupt()
    new, target = Path(new), Path(target)
    umask_modes(new)
    sweep(target.parent, [target.name])
    if not target.exists():
        os.replace(new, target)
        return
    if exchange(new, target):
        _remove(new)  # now holds the old version
        return
    old = temp_path(target, "old")
    os.replace(target, old)
    os.replace(new, target)
    _remove(old)


def replace_file(new: Path, target: Path) -> None:
    """``os.replace``: atomic for a file on POSIX."""
    check_interrupt()
    os.replace(new, target)


@contextmanager
def atomic_dir(target: Path):
    """``with atomic_dir(folder) as tmp: <write the new version into tmp>``: on success the complete ``tmp``
    replaces ``folder`` (:func:`replace_dir`); on any failure, Ctrl-C or kill before that, ``folder`` is left
    as it was and ``tmp`` is removed (or swept later: its name carries the pid)."""
    tmp = temp_dir(target)
    try:
        yield tmp
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text(target: Path, text: str) -> Path:
    """Write ``text`` beside ``target`` and swap it in (:func:`replace_file`): readers see the old file or
    the new one, never a part; a failure leaves the old file and no temporary."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(target)
    try:
        tmp.write_text(text)
        replace_file(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this host (this process counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner(rest: str) -> int | None:
    m = re.match(r"^(\d+)-[0-9a-f]{8}", rest)
    return int(m.group(1)) if m else None


def sweep(folder: Path, names: Iterable[str] | None = None) -> list[Path]:
    """Remove ``.<name>.{tmp,old,build}-*`` leftovers in ``folder`` whose writer is gone; a ``.old-`` folder
    whose target is missing (a crash mid-swap) is put back instead. ``names``: only these targets.
    Returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    wanted = set(names) if names is not None else None
    removed = []
    now = time.time()
    for entry in sorted(folder.iterdir()):
        m = _STALE.match(entry.name)
        if not m or (wanted is not None and m.group("name") not in wanted):
            continue
        pid = _owner(m.group("rest"))
        if pid is not None:
            if pid_alive(pid):
                continue
        else:
            try:
                if now - entry.lstat().st_mtime < _NO_PID_AGE:
                    continue
            except FileNotFoundError:
                continue
        target = folder / m.group("name")
        if m.group("tag") == "old" and not target.exists():  # killed between the two renames: put it back
            os.replace(entry, target)
            continue
        _remove(entry)
        removed.append(entry)
    return removed


# ---------------------------------------------------------------- several artefacts from one build
def commit(swaps: Sequence[tuple[Path, Path]], folder: Path, build_id: str, drop: Sequence[Path] = ()) -> None:
    """Swap each complete ``new`` into its ``target`` (same folder), all or nothing across crashes.

    A folder ``new`` must hold a file ``BUILD`` with ``build_id`` (that is how recovery tells a swapped
    folder from an unswapped one). ``drop``: files to delete before the swaps (a stale WAL). Commits
    and recoveries in one folder take turns (``flock`` on the folder).
    """
    check_interrupt()
    folder = Path(folder)
    journal = folder / JOURNAL
    entry = {"pid": os.getpid(), "build": build_id, "drop": [str(p) for p in drop],
             "swaps": [[str(n), str(t)] for n, t in swaps]}
    with _locked(folder, wait=60.0):
        _finish_journal(folder)  # one a killed process left
        tmp = temp_path(journal, "tmp")
        with open(tmp, "w") as f:
            json.dump(entry, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, journal)
        _fsync_dir(folder)
        _finish(entry)
        journal.unlink()
        _fsync_dir(folder)


@contextmanager
def _locked(folder: Path, wait: float):
    """Exclusive ``flock`` on the folder itself (no lock file; released when the process dies)."""
    import fcntl

    fd = os.open(folder, os.O_RDONLY)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise WorkspaceError(f"{folder}: another process is swapping in a new graph; try again") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def _finish(entry: dict) -> None:
    for p in entry.get("drop", []):
        Path(p).unlink(missing_ok=True)
    for n, t in entry["swaps"]:
        new, target = Path(n), Path(t)
        if new.is_dir() or (not new.exists() and target.is_dir()):
            stamp = target / "BUILD"
            if stamp.is_file() and stamp.read_text().strip() == entry["build"]:
                if new.exists():
                    _remove(new)  # the old version, after an exchange
                continue
            if not new.exists():
                raise WorkspaceError(f"{target}: the build {entry['build']} to finish is gone; run `kgrec load-graph` again")
            if target.exists():
                if exchange(new, target):
                    _remove(new)
                    continue
                old = temp_path(target, "old")
                os.replace(target, old)
                os.replace(new, target)
                _remove(old)
            else:
                os.replace(new, target)
        elif new.exists():
            os.replace(new, target)


def recover(folder: Path, wait: float = 10.0) -> bool:
    """Finish a :func:`commit` that a killed process left half done (its journal is in ``folder``).

    Waits (up to ``wait`` seconds) for a commit in progress. Returns True when something was finished.
    """
    folder = Path(folder)
    if not (folder / JOURNAL).exists():
        return False
    try:
        with _locked(folder, wait):
            return _finish_journal(folder)
    except PermissionError as exc:
        raise WorkspaceError(f"{folder}: a graph update was interrupted and needs write access to finish ({exc})") from None


def _finish_journal(folder: Path) -> bool:
    journal = folder / JOURNAL
    if not journal.exists():
        return False
    try:
        entry = json.loads(journal.read_text())
    except (OSError, ValueError):  # written by os.replace, so never torn; be safe anyway
        raise WorkspaceError(f"{journal} is unreadable: run `kgrec load-graph` again") from None
    _finish(entry)
    journal.unlink(missing_ok=True)
    _fsync_dir(folder)
    return True


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


__all__ = ["JOURNAL", "commit", "exchange", "recover", "replace_dir", "replace_file", "sweep", "temp_dir", "temp_path"]
