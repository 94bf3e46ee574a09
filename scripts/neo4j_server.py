"""A real Neo4j 5 Community server on 127.0.0.1, for the tests and for developers.

    python scripts/neo4j_server.py                  # a server until Ctrl-C; prints the NEO4J_* settings
    python scripts/neo4j_server.py --port 7687 --password my-pw --home /tmp/neo4j-dev

Neo4j comes from Maven Central (``scripts/neo4j/pom.xml``, LTS 5.26; Java 17 and Maven needed): the
first run resolves it into ``~/.m2`` (about 125 MB) and compiles the launcher
(``scripts/neo4j/KgrecNeo4j.java``, kgrec's own code) into a cache folder keyed by the pom and the
launcher's text; later runs reuse both. Bolt listens on 127.0.0.1 only (HTTP is off), on a free port
unless ``--port`` is given, with authentication on (user ``neo4j``, a random password unless
``--password``). The tests use :func:`neo4j_server` as a session fixture (``tests/conftest.py``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent / "neo4j"
POM, LAUNCHER = HERE / "pom.xml", HERE / "KgrecNeo4j.java"


class Neo4jServerError(RuntimeError):
    """The server could not be prepared or started; the message says which step and why."""


@dataclass(frozen=True)
class Server:
    uri: str
    user: str
    password: str
    home: Path
    started_s: float  # seconds from launching the JVM to Bolt accepting authenticated connections
    prepared_s: float  # seconds spent resolving Neo4j and compiling the launcher (0 when cached)

    def env(self) -> dict[str, str]:
        return {"NEO4J_URI": self.uri, "NEO4J_USER": self.user, "NEO4J_PASSWORD": self.password}


def cache_dir() -> Path:
    key = hashlib.sha256(POM.read_bytes() + LAUNCHER.read_bytes()).hexdigest()[:16]
    root = Path(os.environ.get("KGREC_NEO4J_CACHE") or Path.home() / ".cache" / "kgrec" / "neo4j")
    return root / key


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise Neo4jServerError(f"`{tool}` is not on PATH: the Neo4j test server needs Java 17 (JDK) and Maven "
                               "(Debian: apt-get install openjdk-17-jdk-headless maven)")
    return path


def prepare() -> tuple[Path, Path, float]:
    """Resolve Neo4j from Maven Central and compile the launcher, once; (classpath file, classes dir, seconds)."""
    cache = cache_dir()
    cp_file, classes = cache / "classpath.txt", cache / "classes"
    if cp_file.is_file() and (classes / "KgrecNeo4j.class").is_file():
        return cp_file, classes, 0.0
    t0 = time.monotonic()
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="prep-", dir=cache))
    try:
        mvn = subprocess.run(
            [_need("mvn"), "-q", "-B", "-f", str(POM), "dependency:build-classpath", f"-Dmdep.outputFile={tmp / 'classpath.txt'}"],
            capture_output=True, text=True, timeout=900,
        )
        if mvn.returncode != 0:
            raise Neo4jServerError(f"Maven could not resolve Neo4j ({POM}):\n{(mvn.stdout + mvn.stderr)[-3000:]}")
        cp = (tmp / "classpath.txt").read_text().strip()
        javac = subprocess.run([_need("javac"), "-d", str(tmp / "classes"), "-cp", cp, str(LAUNCHER)],
                               capture_output=True, text=True, timeout=300)
        if javac.returncode != 0:
            raise Neo4jServerError(f"javac failed on {LAUNCHER}:\n{javac.stderr[-3000:]}")
        shutil.rmtree(classes, ignore_errors=True)
        (tmp / "classes").rename(classes)
        os.replace(tmp / "classpath.txt", cp_file)  # the commit point: written last
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return cp_file, classes, time.monotonic() - t0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # in the child: SIGTERM when the parent dies, so no server is orphaned
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@contextmanager
def neo4j_server(*, port: int | None = None, password: str | None = None, home: Path | None = None,
                 heap_mb: int = 1024, pagecache_mb: int = 256, start_timeout: float = 300.0) -> Iterator[Server]:
    """Start Neo4j, yield a :class:`Server` once Bolt accepts its credentials, stop it on exit.

    ``home`` (a fresh temporary folder unless given) holds its databases and logs; a temporary one is
    removed afterwards."""
    cp_file, classes, prepared_s = prepare()
    java = _need("java")
    own_home = home is None
    home = Path(tempfile.mkdtemp(prefix="kgrec-neo4j-")) if own_home else Path(home)
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    password = password or secrets.token_urlsafe(18)
    cmd = [java, f"-Xmx{heap_mb}m", "-XX:+UseG1GC", "-cp", f"{cp_file.read_text().strip()}{os.pathsep}{classes}",
           "KgrecNeo4j", str(home), str(port), password, str(pagecache_mb)]
    t0 = time.monotonic()
    log = open(home / "launcher.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                            preexec_fn=_die_with_parent)
    ready = threading.Event()

    def watch() -> None:
        for line in proc.stdout:
            if line.startswith("READY"):
                ready.set()

    threading.Thread(target=watch, daemon=True).start()
    try:
        while not ready.wait(0.1):
            if proc.poll() is not None:
                raise Neo4jServerError(f"Neo4j exited with status {proc.returncode} before Bolt opened; "
                                       f"{home / 'launcher.log'}:\n{(home / 'launcher.log').read_text()[-3000:]}")
            if time.monotonic() - t0 > start_timeout:
                raise Neo4jServerError(f"Neo4j did not open Bolt on 127.0.0.1:{port} within {start_timeout:.0f} s "
                                       f"(logs in {home / 'logs'})")
        yield Server(f"bolt://127.0.0.1:{port}", "neo4j", password, home, time.monotonic() - t0, prepared_s)
    finally:
        if proc.poll() is None:
            proc.stdin.close()  # the launcher shuts the DBMS down cleanly when stdin closes
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        if own_home:
            shutil.rmtree(home, ignore_errors=True)


def admin_import(export_dir: Path, home: Path, database: str = "neo4j", heap_mb: int = 1024) -> float:
    """Run Neo4j's own bulk importer (``neo4j-admin database import full``, the AdminTool class of the
    Maven artefacts) on the files of ``kgrec export-graph --format neo4j-admin`` in ``export_dir``,
    into ``home`` (a later :func:`neo4j_server` with this ``home`` serves it). Returns seconds."""
    cp_file, _, _ = prepare()
    manifest = json.loads((Path(export_dir) / "manifest.json").read_text())
    args = shlex.split(manifest["command"])
    assert args[:4] == ["neo4j-admin", "database", "import", "full"], args
    (Path(home) / "conf").mkdir(parents=True, exist_ok=True)
    (Path(home) / "conf" / "neo4j.conf").touch()
    env = {**os.environ, "NEO4J_HOME": str(home), "NEO4J_CONF": str(Path(home) / "conf")}
    cmd = [_need("java"), f"-Xmx{heap_mb}m", "-cp", cp_file.read_text().strip(), "org.neo4j.cli.AdminTool", *args[1:]]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=export_dir, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0 or "IMPORT DONE" not in proc.stdout + proc.stderr:
        raise Neo4jServerError(f"neo4j-admin import failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    return time.monotonic() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=None, help="Bolt port on 127.0.0.1 (default: a free one)")
    ap.add_argument("--password", default=None, help="password of user neo4j (default: random, printed)")
    ap.add_argument("--home", type=Path, default=None, help="folder for databases and logs (default: temporary, removed)")
    ap.add_argument("--heap-mb", type=int, default=1024)
    ap.add_argument("--pagecache-mb", type=int, default=256)
    args = ap.parse_args(argv)
    try:
        with neo4j_server(port=args.port, password=args.password, home=args.home, heap_mb=args.heap_mb,
                          pagecache_mb=args.pagecache_mb) as srv:
            print(f"# Neo4j 5 Community on {srv.uri} (prepared in {srv.prepared_s:.1f} s, started in {srv.started_s:.1f} s)")
            for k, v in srv.env().items():
                print(f"export {k}={v}")
            print("# Ctrl-C stops it", flush=True)
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
            while True:
                time.sleep(3600)
    except Neo4jServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
