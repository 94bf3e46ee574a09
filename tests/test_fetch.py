"""`kgrec fetch-data` against a real HTTP server on 127.0.0.1 serving a temp folder (no internet)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import kgrec.cli.fetch  # noqa: F401  (registers fetch-data on the app)
from kgrec.cli.app import app
from kgrec.errors import InputError, KgrecError
from kgrec.fetch import LOG_NAME, FetchError, fetch, load_manifest
from tests.conftest import real_data_dir, requires_real_data

PLAIN = b"id,name\n1,aspirin\n2,heparin\n"
GZ_INNER = b"code,label\nA01,one\nB02,two\n"
ZIP_X = b"x\n1\n"
ZIP_Y = b"y\n2\n"
NC_BODY = b"a,b\nDB1,DB2\n"
UNVERIFIED_BODY = b"unverified\n"


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


class _Handler(SimpleHTTPRequestHandler):
    requests: list[str]

    def do_GET(self):  # noqa: N802
        self.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def server(tmp_path):
    """Serve tmp_path/www on 127.0.0.1:<random port>; yields (base_url, served_dir, request_log)."""
    www = tmp_path / "www"
    www.mkdir()
    (www / "plain.csv").write_bytes(PLAIN)
    (www / "codes.csv.gz").write_bytes(gzip.compress(GZ_INNER))
    (www / "pack.zip").write_bytes(_zip({"top/x.csv": ZIP_X, "top/sub/y.csv": ZIP_Y, "top/README": b"r"}))
    (www / "evil.zip").write_bytes(_zip({"ok.csv": b"fine\n", "../evil.txt": b"pwned\n"}))
    (www / "nc.csv").write_bytes(NC_BODY)
    (www / "unverified.csv").write_bytes(UNVERIFIED_BODY)
    log: list[str] = []
    handler = type("H", (_Handler,), {"requests": log})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", www, log
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _entry(name, url, dest, sha256, archive=None, nc=False, **extra):
    return {"name": name, "url": url, "dest": dest, "licence": "CC0 1.0" if not nc else "CC BY-NC 4.0",
            "nc": nc, "sha256": sha256, "archive": archive, "notes": f"test entry {name}", **extra}


def _manifest(tmp_path: Path, entries: list[dict]) -> Path:
    p = tmp_path / "manifest.yaml"
    p.write_text(yaml.safe_dump({"version": 1, "sources": entries}, sort_keys=False), encoding="utf-8")
    return p


@pytest.fixture
def manifest(tmp_path, server):
    base, www, _ = server
    return _manifest(tmp_path, [
        _entry("plain", f"{base}/plain.csv", "maps/plain.csv", sha(PLAIN)),
        _entry("codes", f"{base}/codes.csv.gz", "maps/codes.csv", sha((www / "codes.csv.gz").read_bytes()),
               archive="gz"),
        _entry("pack", f"{base}/pack.zip", "pack", sha((www / "pack.zip").read_bytes()), archive="zip",
               strip_components=1),
        _entry("picked", f"{base}/pack.zip", "picked", sha((www / "pack.zip").read_bytes()), archive="zip",
               members={"y.csv": "renamed_y.csv"}),
        _entry("ddi-nc", f"{base}/nc.csv", "ddi/nc.csv", sha(NC_BODY), nc=True),
        _entry("unverified", f"{base}/unverified.csv", "misc/unverified.csv", None),
    ])


def _parts(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".part")]


VERIFIED = ["plain", "codes", "pack", "picked"]


# --------------------------------------------------------------------------------------------- fetch


def test_download_verify_unpack_and_log(tmp_path, server, manifest):
    base, _, requests = server
    dest = tmp_path / "cache"
    res = fetch(dest, names=VERIFIED, manifest=manifest, progress=False)

    assert [i.status for i in res.items] == ["downloaded"] * 4
    assert all(i.verified for i in res.items)
    assert (dest / "maps/plain.csv").read_bytes() == PLAIN
    assert (dest / "maps/codes.csv").read_bytes() == GZ_INNER  # gz unpacked
    assert (dest / "pack/x.csv").read_bytes() == ZIP_X  # zip unpacked, top folder stripped
    assert (dest / "pack/sub/y.csv").read_bytes() == ZIP_Y
    assert (dest / "picked/renamed_y.csv").read_bytes() == ZIP_Y  # member found by suffix, renamed
    assert not (dest / "picked/x.csv").exists()
    assert not _parts(dest)

    log = json.loads((dest / LOG_NAME).read_text())["entries"]
    assert set(log) == set(VERIFIED)
    assert log["plain"]["url"] == f"{base}/plain.csv"
    assert log["plain"]["sha256"] == sha(PLAIN) and log["plain"]["verified"] is True
    assert log["plain"]["licence"] == "CC0 1.0" and log["plain"]["time"].endswith("Z")
    assert log["pack"]["files"]["pack/x.csv"] == sha(ZIP_X)
    assert len(requests) == 4  # the zip is downloaded once per entry that names it


def test_second_run_downloads_nothing(tmp_path, server, manifest):
    _, _, requests = server
    dest = tmp_path / "cache"
    fetch(dest, names=VERIFIED, manifest=manifest, progress=False)
    n = len(requests)
    res = fetch(dest, names=VERIFIED, manifest=manifest, progress=False)
    assert len(requests) == n, "an intact cache must not be downloaded again"
    assert [i.status for i in res.items] == ["present"] * 4

    # an unpacked file deleted by hand is restored from the kept archive, still without a request
    (dest / "pack/x.csv").unlink()
    fetch(dest, names=["pack"], manifest=manifest, progress=False)
    assert (dest / "pack/x.csv").read_bytes() == ZIP_X
    assert len(requests) == n

    # force downloads again
    fetch(dest, names=["plain"], manifest=manifest, progress=False, force=True)
    assert len(requests) == n + 1


def test_checksum_mismatch_is_an_error_and_leaves_nothing(tmp_path, server):
    base, _, _ = server
    wrong = "0" * 64
    m = _manifest(tmp_path, [_entry("plain", f"{base}/plain.csv", "maps/plain.csv", wrong)])
    dest = tmp_path / "cache"
    with pytest.raises(FetchError) as exc:
        fetch(dest, manifest=m, progress=False)
    msg = str(exc.value)
    assert "plain.csv" in msg and wrong in msg and sha(PLAIN) in msg
    assert not (dest / "maps/plain.csv").exists()
    assert not _parts(dest)
    assert exc.value.result.failed[0].name == "plain"


def test_unverified_refused_without_flag(tmp_path, server, manifest):
    _, _, requests = server
    dest = tmp_path / "cache"
    with pytest.raises(KgrecError, match="allow-unverified"):
        fetch(dest, names=["unverified"], manifest=manifest, progress=False)
    assert not (dest / "misc/unverified.csv").exists()
    assert requests == []

    res = fetch(dest, manifest=manifest, progress=False)  # everything: refused, the rest fetched
    assert [i.name for i in res.refused] == ["unverified"]
    assert not (dest / "misc/unverified.csv").exists()
    assert "/unverified.csv" not in requests

    res = fetch(dest, names=["unverified"], manifest=manifest, progress=False, allow_unverified=True)
    assert res.items[0].status == "downloaded" and res.items[0].verified is False
    assert (dest / "misc/unverified.csv").read_bytes() == UNVERIFIED_BODY
    log = json.loads((dest / LOG_NAME).read_text())["entries"]["unverified"]
    assert log["verified"] is False and log["sha256"] == sha(UNVERIFIED_BODY)

    n = len(requests)  # idempotent for unverified entries too (the log remembers the hash)
    res = fetch(dest, names=["unverified"], manifest=manifest, progress=False, allow_unverified=True)
    assert res.items[0].status == "present" and len(requests) == n


def test_exclude_nc_skips_non_commercial(tmp_path, server, manifest):
    _, _, requests = server
    dest = tmp_path / "cache"
    res = fetch(dest, manifest=manifest, progress=False, exclude_nc=True, allow_unverified=True)
    assert [i.name for i in res.excluded] == ["ddi-nc"]
    assert not (dest / "ddi/nc.csv").exists()
    assert "/nc.csv" not in requests
    assert (dest / "maps/plain.csv").exists()


def test_zip_path_traversal_is_refused(tmp_path, server):
    base, www, _ = server
    m = _manifest(tmp_path, [
        _entry("evil", f"{base}/evil.zip", "unpacked", sha((www / "evil.zip").read_bytes()), archive="zip"),
    ])
    dest = tmp_path / "cache"
    with pytest.raises(FetchError, match="unsafe member path"):
        fetch(dest, manifest=m, progress=False)
    assert not (tmp_path / "evil.txt").exists()
    assert not (dest / "evil.txt").exists()
    assert not (dest / "unpacked").exists(), "nothing is unpacked from an unsafe archive"


def test_foreign_file_is_kept_unless_forced(tmp_path, server, manifest):
    dest = tmp_path / "cache"
    mine = dest / "maps/plain.csv"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"my own edited copy\n")
    res = fetch(dest, names=["plain"], manifest=manifest, progress=False)
    assert res.conflicts[0].name == "plain"
    assert mine.read_bytes() == b"my own edited copy\n"
    fetch(dest, names=["plain"], manifest=manifest, progress=False, force=True)
    assert mine.read_bytes() == PLAIN


def test_http_error_names_source_and_others_still_fetched(tmp_path, server):
    base, _, _ = server
    m = _manifest(tmp_path, [
        _entry("missing", f"{base}/nope.csv", "x/nope.csv", "a" * 64),
        _entry("plain", f"{base}/plain.csv", "maps/plain.csv", sha(PLAIN)),
    ])
    dest = tmp_path / "cache"
    with pytest.raises(FetchError, match=r"missing: .*HTTP 404"):
        fetch(dest, manifest=m, progress=False)
    assert (dest / "maps/plain.csv").read_bytes() == PLAIN
    assert not _parts(dest)


def test_proxy_settings_are_ignored(tmp_path, server, manifest, monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # discard port: would fail if used
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    res = fetch(tmp_path / "cache", names=["plain"], manifest=manifest, progress=False)
    assert res.items[0].status == "downloaded"


def test_file_url(tmp_path):
    src = tmp_path / "local.csv"
    src.write_bytes(PLAIN)
    m = _manifest(tmp_path, [_entry("local", src.as_uri(), "l/local.csv", sha(PLAIN))])
    res = fetch(tmp_path / "cache", manifest=m, progress=False)
    assert res.items[0].status == "downloaded"
    assert (tmp_path / "cache/l/local.csv").read_bytes() == PLAIN


# ----------------------------------------------------------------------------------------------- CLI


def test_cli_json(tmp_path, server, manifest):
    dest = tmp_path / "cache"
    runner = CliRunner()
    r = runner.invoke(app, ["fetch-data", "--dest", str(dest), "--manifest", str(manifest),
                            "--source", "plain", "--source", "codes", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)  # only JSON on stdout
    assert out["ok"] is True and out["counts"] == {"downloaded": 2}
    assert {i["name"] for i in out["items"]} == {"plain", "codes"}
    assert (dest / "maps/codes.csv").read_bytes() == GZ_INNER

    r = runner.invoke(app, ["fetch-data", "-d", str(dest), "--manifest", str(manifest), "--json",
                            "--exclude-nc"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    status = {i["name"]: i["status"] for i in out["items"]}
    assert status == {"plain": "present", "codes": "present", "pack": "downloaded", "picked": "downloaded",
                      "ddi-nc": "excluded", "unverified": "refused"}

    r = runner.invoke(app, ["fetch-data", "--manifest", str(manifest), "--list", "--json"])
    assert r.exit_code == 0
    assert [s["name"] for s in json.loads(r.stdout)["sources"]][:2] == ["plain", "codes"]


def test_cli_errors_exit_2(tmp_path, server, monkeypatch):
    base, _, _ = server
    m = _manifest(tmp_path, [_entry("plain", f"{base}/plain.csv", "maps/plain.csv", "f" * 64)])
    runner = CliRunner()
    r = runner.invoke(app, ["fetch-data", "-d", str(tmp_path / "c"), "--manifest", str(m), "--json"])
    assert r.exit_code == 2
    out = json.loads(r.stdout)
    assert out["ok"] is False and out["items"][0]["status"] == "failed"
    assert "checksum mismatch" in r.stderr

    r = runner.invoke(app, ["fetch-data", "-d", str(tmp_path / "c"), "--manifest", str(m), "--source", "nope"])
    assert r.exit_code == 2 and "unknown source" in r.stderr

    monkeypatch.setenv("KGREC_DATA", str(tmp_path / "from-env"))
    r = runner.invoke(app, ["fetch-data", "--manifest", str(m)])  # default dest from $KGREC_DATA
    assert r.exit_code == 2
    assert (tmp_path / "from-env" / LOG_NAME).exists()


# ------------------------------------------------------------------------------------------ manifest


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "red"}, "unknown key"),
        ({"url": None}, "'url'"),
        ({"dest": "../outside.csv"}, "'dest'"),
        ({"dest": "/abs/path.csv"}, "'dest'"),
        ({"sha256": "abc123"}, "'sha256'"),
        ({"archive": "tar"}, "'archive'"),
        ({"nc": "no"}, "'nc'"),
        ({"url": "ftp://example.org/x"}, "'url'"),
        ({"members": {"a": "b"}}, "'members'"),
    ],
)
def test_manifest_validation_errors_name_the_entry(tmp_path, change, message):
    e = _entry("broken-entry", "http://127.0.0.1:1/x.csv", "x/x.csv", "a" * 64)
    e.update(change)
    with pytest.raises(InputError, match=message) as exc:
        load_manifest(_manifest(tmp_path, [e]))
    assert "broken-entry" in str(exc.value) and "manifest.yaml" in str(exc.value)


@pytest.mark.parametrize("missing", ["url", "dest", "licence", "sha256"])
def test_manifest_missing_keys(tmp_path, missing):
    e = _entry("broken-entry", "http://127.0.0.1:1/x.csv", "x/x.csv", "a" * 64)
    del e[missing]
    with pytest.raises(InputError, match=rf"broken-entry.*missing key.*{missing}"):
        load_manifest(_manifest(tmp_path, [e]))


def test_manifest_duplicates(tmp_path):
    a = _entry("same", "http://127.0.0.1:1/a", "x/a.csv", "a" * 64)
    b = _entry("same", "http://127.0.0.1:1/b", "x/b.csv", "b" * 64)
    with pytest.raises(InputError, match="duplicate name 'same'"):
        load_manifest(_manifest(tmp_path, [a, b]))
    b["name"] = "other"
    b["dest"] = "x/a.csv"
    with pytest.raises(InputError, match="also written by entry 'same'"):
        load_manifest(_manifest(tmp_path, [a, b]))


def test_shipped_manifest_is_complete():
    man = load_manifest()
    assert len(man) >= 25
    names = man.names()
    assert len(names) == len(set(names))
    for s in man:
        assert s.url.startswith("https://"), s.name
        assert s.dest and s.licence, s.name
        assert s.notes, f"{s.name}: say where the file comes from and how it relates to the open-data copy"
    required = {"mimic-iii-demo", "eicu-demo", "gsn-atc-ndc-map", "chch-miner-train", "chch-miner-snap",
                "pharmacotherapydb-indications", "medi-all", "rxcui-unii-map", "disease-ontology-xrefs",
                "drugbank-vocabulary", "clinicaltrials-drug-disease", "bc5cdr"}
    assert required <= set(names)
    by = {s.name: s for s in man}
    assert by["mimic-iii-demo"].sha256 is None  # the open-data copy is altered: no trusted hash
    assert by["eicu-demo"].sha256 is None
    assert {n for n, s in by.items() if s.nc} >= {"chch-miner-train", "medi-all", "drugbank-slim"}


@requires_real_data
def test_shipped_checksums_match_the_open_data_folder():
    """Every verified entry whose file is in the open-data folder hashes to the manifest's sha256."""
    root = real_data_dir()
    checked = 0
    for s in load_manifest():
        if s.sha256 is None or s.archive is not None:
            continue
        p = root / s.dest
        if p.is_file():
            assert hashlib.sha256(p.read_bytes()).hexdigest() == s.sha256, s.name
            checked += 1
    assert checked >= 15
