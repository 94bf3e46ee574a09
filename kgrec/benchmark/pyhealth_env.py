"""PyHealth in its own virtual environment, created on demand.

PyHealth 2.x needs Python >= 3.12 (kgrec runs on 3.11) and pins pandas < 3, so it cannot share kgrec's
environment. :func:`setup_pyhealth` finds a Python 3.12/3.13 (``--pyhealth-base-python``, then
``python3.13``/``python3.12`` on PATH, then pyenv's versions), creates a venv (default
``~/.cache/kgrec/pyhealth-venv``, or ``$KGREC_PYHEALTH_VENV``) and pip-installs PyHealth into it with its
own dependencies. pip's output goes to ``<venv>/kgrec-pip.log`` and every attempt (command, exit code,
seconds, the tail of the log) to ``<venv>/kgrec-setup.json``, which the benchmark report quotes when
PyHealth cannot run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_SPEC = "pyhealth==2.1.0"
RUNNER = Path(__file__).with_name("pyhealth_runner.py")


def default_venv() -> Path:
    env = os.environ.get("KGREC_PYHEALTH_VENV")
    return Path(env) if env else Path.home() / ".cache" / "kgrec" / "pyhealth-venv"


def venv_python(venv: Path) -> Path:
    return Path(venv) / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


@dataclass
class PyHealthEnv:
    """Where PyHealth runs (``python``), whether it imports (``ok``), and why not (``reason``)."""

    python: str | None
    ok: bool
    reason: str = ""
    versions: dict = field(default_factory=dict)
    venv: str | None = None
    attempts: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def _version_of(python: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run([python, "-c", "import sys; print(sys.version_info[0], sys.version_info[1])"], capture_output=True, text=True, timeout=60, check=False)
        major, minor = out.stdout.split()
        return int(major), int(minor)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def find_base_python() -> str | None:
    """A Python 3.12 or 3.13 interpreter for PyHealth 2.x, or None."""
    cands: list[str] = []
    for name in ("python3.12", "python3.13"):
        if p := shutil.which(name):
            cands.append(p)
    roots = [os.environ.get("PYENV_ROOT"), str(Path.home() / ".pyenv")]
    for root in filter(None, roots):
        vers = Path(root) / "versions"
        if vers.is_dir():
            for v in sorted(vers.iterdir()):
                if v.name.startswith(("3.12", "3.13")):
                    cands.append(str(v / "bin" / "python"))
    for c in cands:
        if Path(c).exists() and (ver := _version_of(c)) and (3, 12) <= ver < (3, 14):
            return c
    return None


def probe(python: str | Path, timeout: float = 600) -> PyHealthEnv:
    """Import PyHealth and torch with ``python`` (through the runner's ``--probe``)."""
    try:
        out = subprocess.run([str(python), str(RUNNER), "--probe"], capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return PyHealthEnv(str(python), False, f"cannot start {python}: {exc}")
    try:
        versions = json.loads(out.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return PyHealthEnv(str(python), False, f"{python} --probe failed (exit {out.returncode}): {_tail(out.stderr)}")
    if out.returncode != 0:
        why = versions.get("pyhealth_error") or versions.get("torch_error") or _tail(out.stderr)
        return PyHealthEnv(str(python), False, f"PyHealth does not import under {python}: {why}", versions)
    return PyHealthEnv(str(python), True, "", versions)


def _tail(text: str, n: int = 1500) -> str:
    text = (text or "").strip()
    return text if len(text) <= n else "..." + text[-n:]


def _attempts_path(venv: Path) -> Path:
    return Path(venv) / "kgrec-setup.json"


def _record(venv: Path, attempt: dict) -> list[dict]:
    path = _attempts_path(venv)
    old = json.loads(path.read_text()) if path.exists() else []
    old.append(attempt)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(old, indent=2))
    return old


def setup_pyhealth(
    venv: Path | str | None = None,
    base_python: str | None = None,
    spec: str = DEFAULT_SPEC,
    extra: tuple[str, ...] = (),
    progress: Callable[[str], None] | None = None,
) -> PyHealthEnv:
    """Create (or complete) the PyHealth venv and install ``spec`` into it. Never raises for an install
    failure: the returned :class:`PyHealthEnv` says what went wrong."""
    venv = Path(venv) if venv else default_venv()
    say = progress or (lambda m: None)
    base = base_python or find_base_python()
    if base is None:
        return PyHealthEnv(None, False, "no Python 3.12/3.13 found for PyHealth 2.x (it needs Python >= 3.12): install one (e.g. pyenv install 3.12) or pass --pyhealth-base-python", venv=str(venv))
    py = venv_python(venv)
    venv.mkdir(parents=True, exist_ok=True)
    log = venv / "kgrec-pip.log"
    steps = []
    if not py.exists():
        steps.append([base, "-m", "venv", str(venv)])
    steps.append([str(py), "-m", "pip", "install", spec, *extra])
    attempts: list[dict] = []
    for cmd in steps:
        say(" ".join(cmd[-3:]) if "pip" in cmd else f"creating {venv} with {base}")
        t0 = time.perf_counter()
        with open(log, "a") as fh:
            fh.write(f"\n$ {' '.join(cmd)}\n")
            fh.flush()
            rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False).returncode
        attempt = {"command": cmd, "exit": rc, "seconds": round(time.perf_counter() - t0, 1), "log": str(log)}
        if rc != 0:
            attempt["log_tail"] = _tail(log.read_text(errors="replace"), 3000)
        attempts = _record(venv, attempt)
        if rc != 0:
            return PyHealthEnv(str(py), False, f"`{' '.join(cmd)}` failed (exit {rc}); see {log}: {_tail(attempt['log_tail'], 800)}", venv=str(venv), attempts=attempts)
    say("checking that PyHealth imports")
    env = probe(py)
    env.venv, env.attempts = str(venv), attempts
    return env


def resolve_pyhealth(
    python: str | Path | None = None,
    venv: Path | str | None = None,
    auto_setup: bool = True,
    base_python: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> PyHealthEnv:
    """The PyHealth interpreter to use: ``python`` if given, else the venv's (set up first when missing
    and ``auto_setup``)."""
    if python is not None:
        return probe(python)
    venv = Path(venv) if venv else default_venv()
    py = venv_python(venv)
    if py.exists():
        env = probe(py)
        env.venv = str(venv)
        if env.ok or not auto_setup:
            return env
    elif not auto_setup:
        return PyHealthEnv(None, False, f"no PyHealth venv at {venv}: run `kgrec benchmark --setup-pyhealth`", venv=str(venv))
    return setup_pyhealth(venv, base_python, progress=progress)
