"""Corpus downloads against a local HTTP server on 127.0.0.1 that serves small corpora in each source's layout.

No test reaches the internet: every download goes through the local mirror, and the default mirror of this
module is a closed port.
"""
from __future__ import annotations

import errno
import hashlib
import io
import json
import socket
import tarfile
import threading
import zipfile
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import soundfile as sf
from streamlit.testing.v1 import AppTest

from ser_core import config, downloads
from ser_core.cli import main
from ser_core.corpora import build_catalog
from ser_core.errors import DatasetError, DownloadError, OptionError
from tests.clips import voice
from tests.conftest import PROJECT_ROOT
from tests.corpus_trees import write_ravdess_tree

RAVDESS_PATH = "/zenodo.org/records/1188976/files/Audio_Speech_Actors_01-24.zip"
TESS_LIST_PATH = "/borealisdata.ca/api/datasets/:persistentId/"
TESS_FILE_PATH = "/borealisdata.ca/api/access/datafile/{}"
CREMAD_SNAPSHOT_PATH = "/codeload.github.com/CheyneyComputerScience/CREMA-D/tar.gz/refs/heads/master"
CREMAD_MEDIA_PATH = "/media.githubusercontent.com/media/CheyneyComputerScience/CREMA-D/master/{}"


def closed_port_url() -> str:
    """An address on 127.0.0.1 where nothing listens: connecting is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


ENDLESS_BYTES = 64 * 1000**2  # what an "endless" response sends at most, if the client does not hang up first


class Handler(BaseHTTPRequestHandler):
    """GET with byte ranges; `cut` sends part of a file then drops the connection; `status` fails a path;
    `endless` paths answer with zeros and no Content-Length until the client hangs up, counting them in `sent`."""

    def do_GET(self) -> None:
        server = self.server
        path, byte_range = urlsplit(self.path).path, self.headers.get("Range")
        server.log.append((path, byte_range))
        if path in server.endless:
            self.send_response(200)
            self.end_headers()
            zeros = bytes(64 * 1024)
            try:
                while server.sent.get(path, 0) < ENDLESS_BYTES:
                    server.sent[path] = server.sent.get(path, 0) + len(zeros)  # counted first: the client may
                    self.wfile.write(zeros)                                     # hang up on the first chunk
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        data = server.files.get(path)
        if path in server.status or data is None:
            self.send_error(server.status.get(path, 404))
            return
        start = int(byte_range.removeprefix("bytes=").rstrip("-")) if byte_range and not server.ignore_range else 0
        if start >= len(data) > 0:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.end_headers()
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        cut = server.cut.pop(path, None)
        self.wfile.write(data[start:] if cut is None else data[start:start + cut])

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.files, httpd.cut, httpd.status, httpd.log, httpd.ignore_range = {}, {}, {}, [], False
    httpd.endless, httpd.sent = set(), {}
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def wav_bytes(seed: int, f0: float = 150.0) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, voice(duration=0.6, f0=f0, seed=seed), 16_000, format="WAV")
    return buffer.getvalue()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture(scope="module")
def ravdess_zip(tmp_path_factory) -> bytes:
    """The RAVDESS speech archive's layout: Actor_XX/03-01-EE-...-XX.wav at the top of the zip."""
    tree = tmp_path_factory.mktemp("ravdess-tree")
    paths = write_ravdess_tree(tree, actors=(1, 2), emotions=(1, 5), takes=2, duration=0.6)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in paths:
            zipped.write(path, path.relative_to(tree).as_posix())
    return buffer.getvalue()


@pytest.fixture(scope="module")
def tess_files() -> dict[str, bytes]:
    """TESS clips as Borealis lists them: OAF_back_angry.wav, some in folders."""
    names = [f"{speaker}_{word}_{emotion}.wav" for speaker in ("OAF", "YAF") for word in ("back", "dog")
             for emotion in ("angry", "sad")]
    return {name: wav_bytes(seed, 180.0 + 20 * seed) for seed, name in enumerate(names)}


def tess_listing(files: dict[str, bytes], bad: str | None = None) -> bytes:
    entries = [{"directoryLabel": f"TESS/{name.split('_')[0]}", "dataFile": {
        "id": 100 + i, "filename": name, "filesize": len(data),
        "checksum": {"type": "MD5", "value": "0" * 32 if name == bad else md5(data)}}}
        for i, (name, data) in enumerate(files.items())]
    entries.append({"dataFile": {"id": 99, "filename": "README.pdf", "filesize": 3,
                                 "checksum": {"type": "MD5", "value": md5(b"pdf")}}})
    return json.dumps({"status": "OK", "data": {"latestVersion": {"files": entries}}}).encode()


@pytest.fixture(scope="module")
def cremad_files() -> dict[str, bytes]:
    return {f"AudioWAV/{actor}_{sentence}_{emotion}_XX.wav": wav_bytes(seed)
            for seed, (actor, sentence, emotion) in enumerate(
                (a, s, e) for a in (1001, 1002) for s in ("DFA", "TIE") for e in ("ANG", "SAD"))}


def cremad_snapshot(files: dict[str, bytes]) -> bytes:
    """The repository as GitHub archives it: a top folder, Git LFS pointers for the media, plain tables."""
    members = {f"AudioWAV/{Path(path).name}": b"version https://git-lfs.github.com/spec/v1\n"
               + f"oid sha256:{hashlib.sha256(data).hexdigest()}\nsize {len(data)}\n".encode()
               for path, data in files.items()}
    members["AudioMP3/1001_DFA_ANG_XX.mp3"] = members[next(iter(members))]  # another medium: not fetched
    members["VideoDemographics.csv"] = b"ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,Not Hispanic\n" \
                                       b"1002,21,Female,Caucasian,Not Hispanic\n"
    members["README.md"] = b"# CREMA-D\n"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path, data in members.items():
            info = tarfile.TarInfo(f"CREMA-D-master/{path}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def mirror(server, monkeypatch, ravdess_zip, tess_files, cremad_files) -> str:
    """The local server with every corpus on it, and a registry whose sizes and checksums are those corpora's."""
    server.files[RAVDESS_PATH] = ravdess_zip
    server.files[TESS_LIST_PATH] = tess_listing(tess_files)
    server.files.update({TESS_FILE_PATH.format(100 + i): data for i, data in enumerate(tess_files.values())})
    server.files[CREMAD_SNAPSHOT_PATH] = cremad_snapshot(cremad_files)
    server.files.update({CREMAD_MEDIA_PATH.format(path): data for path, data in cremad_files.items()})
    sources = dict(downloads.SOURCES)
    sources["ravdess"] = replace(sources["ravdess"], size=len(ravdess_zip), checksum=f"md5:{md5(ravdess_zip)}",
                                 files=8)
    sources["tess"] = replace(sources["tess"], files=len(tess_files))
    sources["cremad"] = replace(sources["cremad"], files=len(cremad_files))
    monkeypatch.setattr(downloads, "SOURCES", sources)
    monkeypatch.setenv(config.DOWNLOAD_MIRROR_ENV, server.url)
    return server.url


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """Small chunks and no waiting, so tiny files still show progress and retries; no mirror means nowhere."""
    monkeypatch.setattr(downloads, "CHUNK_BYTES", 8 * 1024)
    monkeypatch.setattr(downloads, "PROGRESS_INTERVAL", 0.0)
    monkeypatch.setattr(downloads, "RETRY_WAIT", 0.0)
    monkeypatch.setenv(config.DOWNLOAD_MIRROR_ENV, closed_port_url())


def hidden_leftovers(root: Path) -> list[str]:
    """Entries of the data root other than the downloads folder."""
    return sorted(path.name for path in root.iterdir() if path.name != downloads.DOWNLOADS_FOLDER)


def test_ravdess_downloads_with_progress_then_is_cataloged(mirror, server, tmp_path, ravdess_zip):
    reports, stages = [], []
    result = downloads.download("ravdess", tmp_path, on_progress=lambda *report: reports.append(report),
                                on_stage=stages.append)
    assert (result.name, result.clips, result.speakers) == ("ravdess", 8, 2)
    assert result.path == tmp_path.resolve() / "ravdess" and (result.path / "Actor_01").is_dir()
    done = [report[0] for report in reports]
    assert len(reports) > 5 and done == sorted(done) and done[-1] == len(ravdess_zip)
    assert {report[1] for report in reports} == {len(ravdess_zip)}
    assert reports[-1][2] > 0 and reports[-1][3] == 0  # a rate, and nothing left
    assert [stage.split()[0] for stage in stages] == ["Downloading", "Verifying", "Unpacking", "Cataloging"]
    catalog = build_catalog(tmp_path)
    assert set(catalog["corpus"]) == {"ravdess"} and len(catalog) == 8
    assert hidden_leftovers(tmp_path) == ["ravdess"]
    assert not list((tmp_path / downloads.DOWNLOADS_FOLDER).glob("*.zip*"))  # the archive went once unpacked
    assert [request[0] for request in server.log] == [RAVDESS_PATH]


def test_a_broken_transfer_resumes_with_a_range_request(mirror, server, tmp_path, ravdess_zip):
    half = len(ravdess_zip) // 2
    server.cut[RAVDESS_PATH] = half
    reports = []
    downloads.download("ravdess", tmp_path, on_progress=lambda *report: reports.append(report))
    [(first, no_range), (again, byte_range)] = server.log
    assert first == again == RAVDESS_PATH and no_range is None
    assert 0 < int(byte_range.removeprefix("bytes=").rstrip("-")) <= half  # from what had been written
    assert reports[-1][0] == len(ravdess_zip)
    assert len(build_catalog(tmp_path)) == 8  # the checksum matched, the archive unpacked


def test_a_partial_file_from_an_earlier_run_is_continued(mirror, server, tmp_path, ravdess_zip):
    part = tmp_path / downloads.DOWNLOADS_FOLDER / "Audio_Speech_Actors_01-24.zip.part"
    part.parent.mkdir()
    part.write_bytes(ravdess_zip[:20_000])
    reports = []
    downloads.download("ravdess", tmp_path, on_progress=lambda *report: reports.append(report))
    assert server.log == [(RAVDESS_PATH, "bytes=20000-")]
    assert reports[0][0] == 20_000 and reports[-1][0] == len(ravdess_zip)  # progress starts where it stopped
    assert len(build_catalog(tmp_path)) == 8


def test_a_server_ignoring_the_range_gets_a_fresh_start(mirror, server, tmp_path):
    part = tmp_path / downloads.DOWNLOADS_FOLDER / "Audio_Speech_Actors_01-24.zip.part"
    part.parent.mkdir()
    part.write_bytes(b"x" * 1000)  # not even the right bytes: appending to them would fail the checksum
    server.ignore_range = True
    result = downloads.download("ravdess", tmp_path)
    assert result.clips == 8 and server.log == [(RAVDESS_PATH, "bytes=1000-")]


def test_a_checksum_mismatch_deletes_the_file_and_installs_nothing(mirror, server, tmp_path, monkeypatch):
    monkeypatch.setitem(downloads.SOURCES, "ravdess", replace(downloads.SOURCES["ravdess"], checksum="md5:" + "0" * 32))
    with pytest.raises(DownloadError, match="does not match its published checksum.*deleted"):
        downloads.download("ravdess", tmp_path)
    assert hidden_leftovers(tmp_path) == []
    assert not list((tmp_path / downloads.DOWNLOADS_FOLDER).glob("*.zip*"))
    with pytest.raises(DatasetError):
        build_catalog(tmp_path)


def test_unpacking_is_all_or_nothing(mirror, server, tmp_path, monkeypatch):
    extract, calls = zipfile.ZipFile.extract, []

    def fail_on_the_third(self, member, path=None, pwd=None):
        calls.append(member)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return extract(self, member, path, pwd)

    monkeypatch.setattr(zipfile.ZipFile, "extract", fail_on_the_third)
    with pytest.raises(DownloadError, match="disk .* is full"):
        downloads.download("ravdess", tmp_path)
    assert hidden_leftovers(tmp_path) == []  # neither the corpus nor a half-unpacked folder
    assert downloads.installed(tmp_path) == {}
    monkeypatch.setattr(zipfile.ZipFile, "extract", extract)
    server.log.clear()
    assert downloads.download("ravdess", tmp_path).clips == 8  # the verified archive was kept: no download
    assert server.log == []


def test_an_unreachable_server_says_so(tmp_path):
    with pytest.raises(DownloadError, match=r"Cannot reach 127\.0\.0\.1:\d+ \(the connection was refused\).*offline"):
        downloads.download("ravdess", tmp_path)
    assert hidden_leftovers(tmp_path) == []


@pytest.mark.parametrize("status, meaning", [(404, "not there"), (503, "server failed")])
def test_http_errors_name_the_status(mirror, server, tmp_path, status, meaning):
    server.status[RAVDESS_PATH] = status
    with pytest.raises(DownloadError, match=f"answered HTTP {status} .*{meaning}"):
        downloads.download("ravdess", tmp_path)


def test_not_enough_space_stops_before_downloading(mirror, server, tmp_path, monkeypatch):
    monkeypatch.setattr(downloads.shutil, "disk_usage", lambda path: type("Usage", (), {"free": 10_000_000}))
    with pytest.raises(DownloadError, match="Not enough disk space.*10.0 MB free"):
        downloads.download("ravdess", tmp_path)
    assert server.log == []


def test_tess_files_are_verified_one_by_one(mirror, server, tmp_path, tess_files):
    result = downloads.download("tess", tmp_path)
    assert (result.clips, result.speakers) == (8, 2)
    assert sorted(p.name for p in (tmp_path / "tess" / "TESS").iterdir()) == ["OAF", "YAF"]
    assert sum(path.endswith("/99") for path, _ in server.log) == 0  # the README is not audio: not fetched
    assert hidden_leftovers(tmp_path) == ["tess"]


def test_a_bad_tess_file_is_deleted_and_the_rest_are_kept(mirror, server, tmp_path, tess_files):
    bad = "YAF_dog_sad.wav"
    server.files[TESS_LIST_PATH] = tess_listing(tess_files, bad=bad)
    with pytest.raises(DownloadError, match=f"{bad} from 127.0.0.1:.* does not match its published checksum"):
        downloads.download("tess", tmp_path)
    staged = sorted(p.name for p in (tmp_path / ".tess.partial").rglob("*") if p.is_file())
    assert staged == sorted(name for name in tess_files if name != bad)
    assert hidden_leftovers(tmp_path) == [".tess.partial"] and downloads.installed(tmp_path) == {}
    server.files[TESS_LIST_PATH] = tess_listing(tess_files)
    server.log.clear()
    assert downloads.download("tess", tmp_path).clips == 8
    assert [path for path, _ in server.log] == [TESS_LIST_PATH, TESS_FILE_PATH.format(107)]  # only the bad one


def test_a_tess_listing_short_of_files_is_refused(mirror, server, tmp_path, tess_files):
    server.files[TESS_LIST_PATH] = tess_listing(dict(list(tess_files.items())[:5]))
    with pytest.raises(DownloadError, match="lists 5 audio files .* where 8 are expected"):
        downloads.download("tess", tmp_path)
    assert hidden_leftovers(tmp_path) == []


def test_cremad_comes_from_its_lfs_pointers(mirror, server, tmp_path, cremad_files):
    result = downloads.download("cremad", tmp_path)
    assert (result.clips, result.speakers) == (8, 2)
    catalog = build_catalog(tmp_path)
    assert dict(zip(catalog["speaker"], catalog["gender"])) == {"cremad_1001": "male", "cremad_1002": "female"}
    fetched = [path for path, _ in server.log]
    assert fetched[0] == CREMAD_SNAPSHOT_PATH and len(fetched) == 1 + len(cremad_files)
    assert not any("AudioMP3" in path for path in fetched)
    assert hidden_leftovers(tmp_path) == ["cremad"]
    assert not list((tmp_path / downloads.DOWNLOADS_FOLDER).glob("*.tar.gz"))


def test_corrupt_lfs_audio_is_caught_by_its_pointer(mirror, server, tmp_path, cremad_files):
    path = next(iter(cremad_files))
    server.files[CREMAD_MEDIA_PATH.format(path)] = cremad_files[path][:-2] + b"xx"
    with pytest.raises(DownloadError, match="sha256"):
        downloads.download("cremad", tmp_path)
    assert downloads.installed(tmp_path) == {}


def test_present_manual_and_unknown_corpora(mirror, tmp_path):
    downloads.download("ravdess", tmp_path)
    with pytest.raises(DownloadError, match=r"already in .* \(8 clips\)"):
        downloads.download("ravdess", tmp_path)
    with pytest.raises(DownloadError, match=r"registration.*Register\.html.*savee"):
        downloads.download("savee", tmp_path)
    with pytest.raises(OptionError, match="ravdess, tess, cremad, savee"):
        downloads.download("emodb", tmp_path)
    (tmp_path / "tess").mkdir()
    (tmp_path / "tess" / "notes.txt").write_text("mine")
    with pytest.raises(DownloadError, match="not an empty folder"):
        downloads.download("tess", tmp_path)


def test_a_second_simultaneous_download_is_refused(mirror, tmp_path):
    fcntl = pytest.importorskip("fcntl")
    lock = tmp_path / downloads.DOWNLOADS_FOLDER / "ravdess.lock"
    lock.parent.mkdir()
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(DownloadError, match="already being downloaded"):
            downloads.download("ravdess", tmp_path)


def test_progress_text():
    assert downloads.format_progress(12_300_000, 208_468_073, 4_100_000, 47.6) == \
        "12.3 MB of 208.5 MB · 4.1 MB/s · 48 s left"
    assert downloads.format_progress(0, 2_000_000_000, 0.0, None) == "0 B of 2.00 GB"
    assert downloads.format_progress(1, 10, 1.0, 200) == "1 B of 10 B · 1 B/s · 3 min 20 s left"


def test_cli_download(mirror, tmp_path, capsys, monkeypatch):
    assert main(["download", "--list", "--data-dir", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    for licence in ("CC BY-NC-SA 4.0", "CC BY-NC-ND 4.0", "ODbL 1.0", "registration"):
        assert licence in listing

    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    assert main(["download", "ravdess", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "CC BY-NC-SA 4.0" in err and "[y/N]" in err and "Not downloaded" in err
    assert downloads.installed(tmp_path) == {}

    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    assert main(["download", "ravdess", "--data-dir", str(tmp_path), "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"corpus": "ravdess", "path": str(tmp_path.resolve() / "ravdess"), "clips": 8,
                               "speakers": 2}
    assert "Unpacking…" in err

    assert main(["download", "ravdess", "--data-dir", str(tmp_path), "--yes"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "already in" in err and "Traceback" not in err


def test_explore_offers_the_downloads_and_shows_the_new_corpus(mirror, monkeypatch, tmp_path):
    monkeypatch.setenv("SER_DATA_DIR", str(tmp_path))
    at = AppTest.from_file(str(PROJECT_ROOT / "pages" / "1_Explore.py"), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    text = " ".join(element.value for element in at.markdown)
    assert "Get the corpora" in " ".join(header.value for header in at.subheader)
    assert all(licence in text for licence in ("CC BY-NC-SA 4.0", "CC BY-NC-ND 4.0", "ODbL 1.0"))
    assert any("Register.html" in info.value for info in at.info)  # SAVEE: how to get it
    at.button(key="download_ravdess").click().run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert "**8** of 8 clips" in at.markdown[0].value
    assert any("RAVDESS speech audio: 8 clips from 2 speakers" in message.value for message in at.success)


def test_explore_shows_download_errors(monkeypatch, tmp_path):
    monkeypatch.setenv("SER_DATA_DIR", str(tmp_path))
    at = AppTest.from_file(str(PROJECT_ROOT / "pages" / "1_Explore.py"), default_timeout=60)
    at.run()
    at.button(key="download_tess").click().run()
    assert not at.exception
    assert "Cannot reach 127.0.0.1" in at.error[0].value
