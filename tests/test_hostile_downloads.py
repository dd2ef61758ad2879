"""Downloads from a hostile or broken server: endless or oversized responses, archive bombs, huge LFS pointers.

Each is stopped with a message saying what happened, leaves nothing on disk, and stays within a small memory
bound whatever the sizes the server claims: the bombs below hold 50 MB members in archives of about 50 kB.
"""
from __future__ import annotations

import io
import json
import tarfile
import tracemalloc
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from ser_core import downloads
from ser_core.errors import DownloadError
from tests.test_downloads import (  # noqa: F401 (fixtures)
    CREMAD_MEDIA_PATH, CREMAD_SNAPSHOT_PATH, ENDLESS_BYTES, RAVDESS_PATH, TESS_FILE_PATH, TESS_LIST_PATH, _offline,
    cremad_files, cremad_snapshot, hidden_leftovers, md5, mirror, ravdess_zip, server, tess_files, tess_listing)

BIG = 50 * 1000**2         # bytes in a bomb's member
MEMORY_BOUND = 10 * 1000**2  # what refusing one may take, at most
FIRST_CLIP = "AudioWAV/1001_DFA_ANG_XX.wav"


class Zeros:
    """`size` bytes read like a file, `head` and then zeros, never all in memory."""

    def __init__(self, size: int, head: bytes = b""):
        self.head, self.left = head, size

    def read(self, count: int) -> bytes:
        count = min(count, self.left)
        self.left -= count
        piece, self.head = self.head[:count], self.head[count:]
        return piece + bytes(count - len(piece))


def failed_download(name: str, root: Path) -> tuple[str, int]:
    """The message of a download that fails, and the most memory Python held at once while it ran."""
    tracemalloc.start()
    try:
        with pytest.raises(DownloadError) as caught:
            downloads.download(name, root)
        return str(caught.value), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def stored_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())


def serve_archive(server, monkeypatch, data: bytes) -> None:
    """The RAVDESS archive replaced by `data`, with its published size and checksum, so it passes verification."""
    server.files[RAVDESS_PATH] = data
    monkeypatch.setitem(downloads.SOURCES, "ravdess", replace(downloads.SOURCES["ravdess"], size=len(data),
                                                              checksum=f"md5:{md5(data)}"))


def snapshot_with(files: dict[str, bytes], *extras: tuple[tarfile.TarInfo, Zeros]) -> bytes:
    """The CREMA-D snapshot with `extras` written first, each member's content streamed from its reader;
    members of the same names are left out."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(cremad_snapshot(files))) as base, \
            tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.GNU_FORMAT) as tar:
        for extra, content in extras:
            tar.addfile(extra, content)
        for member in base:
            if member.name not in {extra.name for extra, _ in extras}:
                tar.addfile(member, base.extractfile(member))
    return buffer.getvalue()


def member(name: str, size: int, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.type = size, kind
    return info


@pytest.fixture(scope="module")
def zip_bomb() -> bytes:
    """A RAVDESS-like archive of about 50 kB whose one clip unpacks to 50 MB of zeros."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zipped, \
            zipped.open("Actor_01/03-01-01-01-01-01-01.wav", "w") as clip:
        for _ in range(BIG // 1000**2):
            clip.write(bytes(1000**2))
    return buffer.getvalue()


def test_a_zip_bomb_is_refused_before_anything_is_unpacked(mirror, server, tmp_path, monkeypatch, zip_bomb):
    serve_archive(server, monkeypatch, zip_bomb)
    message, peak = failed_download("ravdess", tmp_path)
    assert f"would unpack to 50.0 MB, more than 50 times its own {downloads.format_bytes(len(zip_bomb))}" in message
    assert "deleted and nothing was unpacked" in message
    assert peak < MEMORY_BOUND
    assert hidden_leftovers(tmp_path) == [] and stored_bytes(tmp_path) == 0


def test_zip_members_compressed_beyond_deflate_are_refused(mirror, server, tmp_path, monkeypatch, ravdess_zip):
    """bzip2 and lzma members expand a whole read at once, past their stated size: refused, not unpacked."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(ravdess_zip)) as plain, \
            zipfile.ZipFile(buffer, "w", zipfile.ZIP_BZIP2) as bzipped:
        for info in plain.infolist():
            bzipped.writestr(info.filename, plain.read(info))
    serve_archive(server, monkeypatch, buffer.getvalue())
    with pytest.raises(DownloadError, match=r"Actor_\S+ is compressed with method 12, where only stored or deflated"):
        downloads.download("ravdess", tmp_path)
    assert hidden_leftovers(tmp_path) == [] and stored_bytes(tmp_path) == 0


@pytest.mark.parametrize("corpus, path, limit", [
    ("ravdess", RAVDESS_PATH, None),                  # the archive: its published size
    ("tess", TESS_LIST_PATH, "IN_MEMORY_LIMIT"),      # the file list, read into memory
    ("tess", TESS_FILE_PATH.format(100), None),       # one file: its listed size
    ("cremad", CREMAD_SNAPSHOT_PATH, "SNAPSHOT_LIMIT"),  # the repository snapshot: no published size
    ("cremad", CREMAD_MEDIA_PATH.format(FIRST_CLIP), None),  # one clip: its pointer's size
])
def test_an_endless_response_is_stopped_at_the_expected_size(mirror, server, tmp_path, monkeypatch, corpus, path,
                                                             limit):
    if limit:
        monkeypatch.setattr(downloads, limit, 1_000_000)
    server.endless.add(path)
    with pytest.raises(DownloadError, match=r"127\.0\.0\.1:\d+ sent more than the expected [\d.]+ [kM]?B for "
                                            r"http://\S+; stopped, and what it sent was deleted"):
        downloads.download(corpus, tmp_path)
    assert [request for request, _ in server.log].count(path) == 1  # not tried again
    assert server.sent[path] < ENDLESS_BYTES // 4  # the client hung up, only socket buffers filled past its limit
    assert stored_bytes(tmp_path) == 0 and downloads.installed(tmp_path) == {}


@pytest.mark.parametrize("corpus, path", [("ravdess", RAVDESS_PATH), ("tess", TESS_FILE_PATH.format(100))])
def test_a_response_longer_than_the_file_is_refused_unread(mirror, server, tmp_path, corpus, path):
    server.files[path] += b"\0" * 10_000
    expected = downloads.format_bytes(len(server.files[path]) - 10_000)
    with pytest.raises(DownloadError, match=f"sent more than the expected {expected} for .*; stopped"):
        downloads.download(corpus, tmp_path)
    assert [request for request, _ in server.log].count(path) == 1
    assert stored_bytes(tmp_path) == 0


def test_a_listing_far_beyond_the_expected_size_is_refused(mirror, server, tmp_path, tess_files):
    listing = json.loads(tess_listing(tess_files))
    listing["data"]["latestVersion"]["files"][0]["dataFile"]["filesize"] = 10**9
    server.files[TESS_LIST_PATH] = json.dumps(listing).encode()
    with pytest.raises(DownloadError, match=r"lists 1\.00 GB of files for Toronto .* where about 290 MB is "
                                            "expected, so nothing was downloaded"):
        downloads.download("tess", tmp_path)
    assert server.log == [(TESS_LIST_PATH, None)] and hidden_leftovers(tmp_path) == []


def test_a_tar_bomb_snapshot_is_refused_in_little_memory(mirror, server, tmp_path, cremad_files):
    server.files[CREMAD_SNAPSHOT_PATH] = snapshot_with(
        cremad_files, (member(f"CREMA-D-master/{FIRST_CLIP}", BIG), Zeros(BIG)))
    message, peak = failed_download("cremad", tmp_path)
    assert "The repository snapshot from 127.0.0.1" in message and "unpacks to more than 50 times its own" in message
    assert peak < MEMORY_BOUND
    assert stored_bytes(tmp_path) == 0 and [path for path, _ in server.log] == [CREMAD_SNAPSHOT_PATH]


def test_a_snapshot_of_countless_empty_entries_is_refused(mirror, server, tmp_path, cremad_files):
    """Headers count too: thousands of empty entries compress about 90 fold."""
    server.files[CREMAD_SNAPSHOT_PATH] = snapshot_with(
        cremad_files, *[(member(f"CREMA-D-master/empty/{i}", 0), Zeros(0)) for i in range(4000)])
    with pytest.raises(DownloadError, match="snapshot from 127.0.0.1.* unpacks to more than 50 times its own"):
        downloads.download("cremad", tmp_path)
    assert stored_bytes(tmp_path) == 0


def test_a_huge_lfs_pointer_is_refused_unread(mirror, server, tmp_path, monkeypatch, cremad_files):
    """A "pointer" that starts like one but goes on for 50 MB: only its header is looked at."""
    monkeypatch.setattr(downloads, "MAX_EXPANSION", 10**6)  # so that only the pointer's own bound applies
    with tarfile.open(fileobj=io.BytesIO(cremad_snapshot(cremad_files))) as tar:
        pointer = tar.extractfile(f"CREMA-D-master/{FIRST_CLIP}").read()
    server.files[CREMAD_SNAPSHOT_PATH] = snapshot_with(
        cremad_files, (member(f"CREMA-D-master/{FIRST_CLIP}", BIG), Zeros(BIG, pointer)))
    message, peak = failed_download("cremad", tmp_path)
    assert f"holds {FIRST_CLIP} of 50.0 MB, more than the 1.0 kB of a Git LFS pointer; nothing was installed" \
        in message
    assert "gitlab.com" in message  # CREMA-D's advice when GitHub fails
    assert peak < MEMORY_BOUND
    assert stored_bytes(tmp_path) == 0


def test_a_huge_tar_header_record_is_refused_unread(mirror, server, tmp_path, monkeypatch, cremad_files):
    """tarfile reads a long name (or pax record) whole, whatever size it states: such reads are bounded."""
    monkeypatch.setattr(downloads, "MAX_EXPANSION", 10**6)
    server.files[CREMAD_SNAPSHOT_PATH] = snapshot_with(
        cremad_files, (member("././@LongLink", BIG, tarfile.GNUTYPE_LONGNAME), Zeros(BIG, b"CREMA-D-master/x")))
    message, peak = failed_download("cremad", tmp_path)
    assert "snapshot from 127.0.0.1" in message and "could not be read" in message
    assert f"a header record of {BIG + 384} bytes" in message  # rounded up to tar's 512-byte blocks
    assert peak < MEMORY_BOUND
    assert stored_bytes(tmp_path) == 0
