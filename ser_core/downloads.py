"""Download the public emotion corpora from their official sources: resumable, verified, unpacked atomically.

SOURCES says where each corpus comes from, what it weighs, how it is verified and under which licence it may
be used; a user sees the licence before anything is downloaded (RAVDESS and TESS are for non-commercial use
only, CREMA-D's ODbL asks for attribution and share-alike). Each source is verified with what its publisher
offers:

- RAVDESS: one archive on Zenodo, with a published size and MD5.
- TESS: Borealis (the University of Toronto's Dataverse) has no fixed archive: its "download all" zip is built
  per request and leaves files out beyond a size limit. So each file is fetched on its own and checked against
  the MD5 the repository lists for it, and the listing must hold all 2800 clips.
- CREMA-D: the audio lives in Git LFS. A snapshot of the repository holds a pointer per clip (SHA-256 and
  size); each clip is fetched from GitHub's LFS host and checked against its pointer, and all 7442 must be there.
- SAVEE needs a registration: it is described, never fetched.

Files are downloaded into hidden folders of the data root (the catalog skips hidden entries), resumed with an
HTTP Range request after an interruption, and renamed into place only when complete and verified, so a
half-finished download never looks like a corpus. A broken or hostile server fills neither disk nor memory: every
transfer stops at its expected size, and an archive is checked before anything is unpacked or read whole. pooch
(which librosa uses) computes the checksums; the transfer itself is requests, because pooch streams every
download into a fresh temporary file that it deletes on failure, so it cannot resume one.
"""
from __future__ import annotations

import errno
import gzip
import json
import os
import shutil
import tarfile
import tempfile
import time
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator
from urllib.parse import urlsplit

import pooch
import requests

from . import config
from .corpora import build_catalog, list_corpora
from .errors import DatasetError, DownloadError, OptionError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, so two simultaneous downloads of a corpus are not prevented
    fcntl = None

DOWNLOADS_FOLDER = ".downloads"   # under the data root: archives and partial files, hidden from the catalog
CHUNK_BYTES = 256 * 1024
TIMEOUT = (15, 60)                # seconds to connect, and to wait for the next bytes
RETRIES = 3                       # a transfer that breaks after receiving bytes resumes this often by itself
RETRY_WAIT = 2.0                  # seconds before the first of those retries, doubling after each
PROGRESS_INTERVAL = 0.25          # seconds between progress reports
SPACE_MARGIN = 50 * 1000**2       # bytes left free beyond what a download needs
# What a hostile or broken server can make a download take. Files of known size are capped at that size.
IN_MEMORY_LIMIT = 20 * 1000**2    # bytes: a file list or side table held in memory (TESS's list: about 3 MB)
SNAPSHOT_LIMIT = 200 * 1000**2    # bytes: a repository snapshot, whose size nobody publishes
SIZE_MARGIN = 2                   # a listing may total at most this multiple of its source's approximate size
MAX_EXPANSION = 50                # an archive may unpack (tar headers included) to at most this multiple of its
                                  # size: audio and text compress 1-10 fold, a "zip bomb" of zeros 1000 fold
LFS_POINTER_LIMIT = 1024          # bytes: the Git LFS spec keeps pointer files below this

# on_progress(done_bytes, total_bytes, rate_bytes_per_s, seconds_left or None); on_stage(what is happening)
ProgressCallback = Callable[[int, int, float, "float | None"], None]
StageCallback = Callable[[str], None]


@dataclass(frozen=True)
class Source:
    """Where a corpus comes from and how it is checked, with the licence a user accepts by downloading it."""

    name: str            # the corpus name the catalog gives it
    title: str
    kind: str            # "archive", "dataverse", "git-lfs" or "manual"
    page: str            # where a person reads about the corpus
    licence: str
    licence_text: str
    citation: str
    folder: str          # installed as <data root>/<folder>
    files: int           # audio files in the corpus
    size: int            # bytes to download: exact for an archive, approximate otherwise
    url: str = ""        # the archive, the Dataverse dataset's API address, or the repository snapshot
    archive: str = ""    # archive: its file name
    checksum: str = ""   # archive: in pooch's known_hash format, "md5:..."
    media_url: str = ""  # git-lfs: where LFS objects are served, by their path in the repository
    audio_folder: str = ""             # git-lfs: the repository folder that holds the audio
    extra_files: tuple[str, ...] = ()  # git-lfs: side tables copied along (CREMA-D's speaker genders)
    note: str = ""       # a manual corpus: how to get it; otherwise what to do when the source fails

    @property
    def verification(self) -> str:
        return {"archive": f"{self.checksum.partition(':')[0].upper()} of the archive",
                "dataverse": "MD5 of every file as the repository lists it, and the file count",
                "git-lfs": "SHA-256 of every file from its Git LFS pointer, and the file count",
                "manual": ""}[self.kind]

    @property
    def size_text(self) -> str:
        if self.kind == "manual":
            return "registration needed"
        return format_bytes(self.size) if self.kind == "archive" else f"about {self.size / 1000**2:.0f} MB"

    def advice(self, data_dir: str | os.PathLike | None = None) -> str:
        """The note, with the folder this corpus belongs in."""
        return self.note.format(target=config.data_root(data_dir) / self.folder)


_CC_NC = ("you may copy and share the recordings for non-commercial purposes only, crediting the authors "
          "(cite the paper below)")
SOURCES: dict[str, Source] = {source.name: source for source in (
    Source(
        name="ravdess", title="RAVDESS speech audio", kind="archive", folder="ravdess", files=1440,
        page="https://zenodo.org/records/1188976",
        url="https://zenodo.org/records/1188976/files/Audio_Speech_Actors_01-24.zip?download=1",
        archive="Audio_Speech_Actors_01-24.zip",
        # As listed on the Zenodo record, and as several independent projects recorded after verifying their
        # downloads; not re-checked against Zenodo from this machine, which has no internet access.
        size=208_468_073, checksum="md5:bc696df654c87fed845eb13823edef8a",
        licence="CC BY-NC-SA 4.0",
        licence_text=f"Creative Commons Attribution-NonCommercial-ShareAlike 4.0: {_CC_NC}; what you make from "
                     "them must be shared under the same licence. Commercial use needs the authors' permission.",
        citation="Livingstone SR, Russo FA (2018). The Ryerson Audio-Visual Database of Emotional Speech and "
                 "Song (RAVDESS). PLoS ONE 13(5): e0196391. https://doi.org/10.1371/journal.pone.0196391"),
    Source(
        name="tess", title="Toronto emotional speech set (TESS)", kind="dataverse", folder="tess", files=2800,
        page="https://doi.org/10.5683/SP2/E8H2MF",
        url="https://borealisdata.ca/api/datasets/:persistentId/?persistentId=doi:10.5683/SP2/E8H2MF",
        size=290_000_000,  # approximate (third-party reports say 270-290 MB); the listing gives the exact total
        licence="CC BY-NC-ND 4.0",
        licence_text=f"Creative Commons Attribution-NonCommercial-NoDerivatives 4.0: {_CC_NC}; modified "
                     "versions of the recordings may not be distributed. No commercial use.",
        citation="Pichora-Fuller MK, Dupuis K (2020). Toronto emotional speech set (TESS). Borealis, V1. "
                 "https://doi.org/10.5683/SP2/E8H2MF"),
    Source(
        name="cremad", title="CREMA-D audio", kind="git-lfs", folder="cremad", files=7442,
        page="https://github.com/CheyneyComputerScience/CREMA-D",
        url="https://codeload.github.com/CheyneyComputerScience/CREMA-D/tar.gz/refs/heads/master",
        media_url="https://media.githubusercontent.com/media/CheyneyComputerScience/CREMA-D/master",
        audio_folder="AudioWAV", extra_files=("VideoDemographics.csv",),
        size=600_000_000,  # approximate: 7442 clips of about 2.5 s at 16 kHz; the pointers give the exact total
        licence="ODbL 1.0",
        licence_text="Open Database License 1.0 (the clips themselves under the Database Contents License "
                     "1.0): you may use, share and adapt the database, crediting the source; a database you "
                     "derive from it and share must be offered under the ODbL too, and kept open.",
        citation="Cao H, Cooper DG, Keutmann MK, Gur RC, Nenkova A, Verma R (2014). CREMA-D: Crowd-sourced "
                 "Emotional Multimodal Actors Dataset. IEEE Transactions on Affective Computing 5(4): 377-390. "
                 "https://doi.org/10.1109/TAFFC.2014.2336244",
        note="If GitHub says the repository is over its Git LFS budget, get the audio from the authors' mirror, "
             "https://gitlab.com/cs-cooper-lab/crema-d-mirror (clone it with Git LFS), and put its AudioWAV "
             "folder and VideoDemographics.csv in {target}."),
    Source(
        name="savee", title="Surrey Audio-Visual Expressed Emotion (SAVEE)", kind="manual", folder="savee",
        files=480, size=0, page="http://kahlan.eps.surrey.ac.uk/savee/",
        licence="research use, after registration",
        licence_text="The University of Surrey provides SAVEE free of charge for research purposes to "
                     "registered users; the terms come with the registration.",
        citation="Haq S, Jackson PJB (2010). Multimodal Emotion Recognition. In Wang W (ed), Machine Audition: "
                 "Principles, Algorithms and Systems, IGI Global, 398-423.",
        note="SAVEE needs a registration, so SER Studio cannot download it: register at "
             "https://personalpages.surrey.ac.uk/p.jackson/SAVEE/Register.html, download AudioData.zip with "
             "the link you are sent, and unpack it so that the speaker folders sit in {target} "
             "(e.g. {target}/DC/a01.wav)."),
)}


@dataclass(frozen=True)
class Installed:
    """A corpus in place under the data root, as the catalog sees it."""

    name: str
    path: Path
    clips: int
    speakers: int


def source(name: str) -> Source:
    """The registry entry of a corpus name; an unknown name is an option error listing the known ones."""
    found = SOURCES.get(name.strip().lower())
    if found is None:
        raise OptionError(f"No corpus named {name!r} to download; known: {', '.join(SOURCES)}.")
    return found


def installed(data_dir: str | os.PathLike | None = None) -> dict[str, int]:
    """Clips per corpus already under the data root, from file names alone; empty when there are none."""
    try:
        return list_corpora(data_dir)
    except DatasetError:
        return {}


def format_bytes(count: float) -> str:
    """Decimal units, as download sites give sizes: 208.5 MB."""
    for unit in ("B", "kB", "MB"):
        if count < 1000:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.2f} GB"


def format_progress(done: int, total: int, rate: float, seconds_left: float | None) -> str:
    """`12.3 MB of 208.5 MB · 4.1 MB/s · 45 s left`, for a progress bar's label."""
    text = f"{format_bytes(done)} of {format_bytes(total)}"
    if rate > 0:
        text += f" · {format_bytes(rate)}/s"
    if seconds_left is not None:
        minutes, seconds = divmod(round(seconds_left), 60)
        text += f" · {minutes} min {seconds:02d} s left" if minutes else f" · {seconds} s left"
    return text


def downloadable(name: str, data_dir: str | os.PathLike | None = None) -> Source:
    """The source of a corpus that can be downloaded into the data root; a corpus that needs a registration,
    or that is there already, is a DownloadError saying so (before anyone is asked to accept a licence)."""
    src = source(name)
    root = config.data_root(data_dir).resolve()
    if src.kind == "manual":
        raise DownloadError(src.advice(root))
    clips = installed(root).get(src.name)
    if clips:
        raise DownloadError(f"{src.title} is already in {root} ({clips} clips); delete it first to download it "
                            "again.")
    return src


def download(name: str, data_dir: str | os.PathLike | None = None, *, mirror: str | None = None,
             on_progress: ProgressCallback | None = None, on_stage: StageCallback | None = None) -> Installed:
    """Download a corpus from its official source, verify it, put it in place under the data root, catalog it.

    Run again after an interruption, it resumes where it stopped. `mirror` (default: $SER_DOWNLOAD_MIRROR) is
    a base URL that replaces each source's host: https://zenodo.org/x becomes <mirror>/zenodo.org/x.
    Every failure is a DownloadError whose message says what happened and what to do.
    """
    src = downloadable(name, data_dir)
    root = config.data_root(data_dir).resolve()
    target = root / src.folder
    if mirror is None:
        mirror = os.environ.get(config.DOWNLOAD_MIRROR_ENV) or None
    stage = on_stage or (lambda text: None)
    try:
        _make_room_for(target)
        downloads = root / DOWNLOADS_FOLDER
        downloads.mkdir(parents=True, exist_ok=True)
        with _exclusive(downloads / f"{src.name}.lock", src.title), \
                _Transfer(mirror, src.advice(root), on_progress) as transfer:
            if src.kind == "archive":
                _install_archive(src, downloads, target, transfer, stage)
            else:
                stage(f"Listing the files at {transfer.host(src.url)}")
                if src.kind == "dataverse":
                    files, extras = _dataverse_listing(src, transfer)
                else:
                    files, extras = _lfs_listing(src, transfer, downloads / f"{src.name}-snapshot.tar.gz")
                _install_files(src, files, extras, target, transfer, stage)
    except OSError as error:
        raise _disk_error(error, root) from None
    stage("Cataloging")
    catalog = build_catalog(root, [src.name])
    return Installed(src.name, target, len(catalog), catalog["speaker"].nunique())


def _make_room_for(target: Path) -> None:
    """An empty folder where the corpus goes is removed (a rename cannot replace it everywhere); anything else
    stays, and the download stops."""
    if target.exists() or target.is_symlink():
        try:
            target.rmdir()
        except OSError:
            raise DownloadError(f"{target} already exists and is not an empty folder; move it away (or choose "
                                f"another data folder with --data-dir or {config.DATA_DIR_ENV}) and run the "
                                "download again.") from None


@contextmanager
def _exclusive(lock: Path, title: str) -> Iterator[None]:
    """Refuse a second simultaneous download of one corpus into one data root (two browser sessions, say)."""
    with open(lock, "w") as handle:
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise DownloadError(f"{title} is already being downloaded into this data folder, by another "
                                    "browser session or process; wait for it to finish.") from None
        yield


class _Meter:
    """Bytes done of a total, the rate since this run began, and the time left, reported every so often."""

    def __init__(self, total: int, done: int, report: ProgressCallback | None):
        self.total, self.done, self.report = total, done, report
        self.start, self.received, self.last_report = time.monotonic(), 0, 0.0
        self._report(time.monotonic())

    def add(self, count: int) -> None:
        self.done += count
        self.received += count
        now = time.monotonic()
        if now - self.last_report >= PROGRESS_INTERVAL or self.done >= self.total:
            self._report(now)

    def drop(self, count: int) -> None:
        """Bytes thrown away to start a file again."""
        self.done -= count

    def _report(self, now: float) -> None:
        if self.report is None:
            return
        self.last_report = now
        elapsed = now - self.start
        rate = self.received / elapsed if elapsed > 0 and self.received else 0.0
        self.report(self.done, self.total, rate, (self.total - self.done) / rate if rate else None)


class _Transfer:
    """One download run's HTTP session, mirror and progress; network failures become clear DownloadErrors."""

    def __init__(self, mirror: str | None, hint: str, on_progress: ProgressCallback | None):
        self.session = requests.Session()
        self.session.headers["Accept-Encoding"] = "identity"  # byte ranges count the bytes as stored
        self.mirror, self.hint, self.on_progress = mirror, hint, on_progress
        self.meter: _Meter | None = None

    def __enter__(self) -> _Transfer:
        return self

    def __exit__(self, *exc) -> None:
        self.session.close()

    def url(self, url: str) -> str:
        """The address actually used: under the mirror <mirror>/<host>/<path>?<query>, if there is one."""
        if not self.mirror:
            return url
        parts = urlsplit(url)
        return f"{self.mirror.rstrip('/')}/{parts.netloc}{parts.path}" + (f"?{parts.query}" if parts.query else "")

    def host(self, url: str) -> str:
        return urlsplit(self.url(url)).netloc

    def advise(self, text: str) -> str:
        """A failure's message, with what to do when the source fails, if the source says."""
        return text + (f" {self.hint}" if self.hint else "")

    def measure(self, total: int, done: int) -> None:
        """Report progress from now on against this total, done bytes being there already."""
        self.meter = _Meter(total, done, self.on_progress)

    def content(self, url: str) -> bytes:
        """A small resource (a listing) in memory: at most IN_MEMORY_LIMIT bytes of it."""
        with self._open(url) as response:
            try:
                return b"".join(self._body(response, IN_MEMORY_LIMIT))
            except _BROKEN as error:
                raise DownloadError(_unreachable(response.url, error, broke=True)) from None

    def fetch(self, url: str, part: Path, size: int | None = None) -> None:
        """Download url into part, continuing after the bytes already there, never past `size` (SNAPSHOT_LIMIT
        when the size is unknown). A transfer that breaks after making progress is resumed up to RETRIES times
        before the failure reaches the user."""
        limit = SNAPSHOT_LIMIT if size is None else size
        for attempt in range(RETRIES + 1):
            have = part.stat().st_size if part.exists() else 0
            if size is not None and have >= size:
                if have == size:
                    return
                self._discard(part, have)
                have = 0
            received = 0
            try:
                with self._open(url, have) as response:
                    if response.status_code == 416:  # nothing after `have`: not a prefix of this file
                        self._discard(part, have)
                        continue
                    if have and not (response.status_code == 206 and
                                     response.headers.get("Content-Range", "").startswith(f"bytes {have}-")):
                        self._discard(part, have)  # the server ignored the range and sends everything
                        have = 0
                    try:
                        with open(part, "ab" if have else "wb") as out:
                            for chunk in self._body(response, limit, have):
                                out.write(chunk)
                                received += len(chunk)
                                if self.meter:
                                    self.meter.add(len(chunk))
                    except DownloadError:  # too much: what it sent cannot be trusted
                        self._discard(part, have + received)
                        raise
            except _BROKEN as error:
                if not received or attempt == RETRIES:
                    raise DownloadError(_unreachable(self.url(url), error, broke=bool(received))) from None
                time.sleep(RETRY_WAIT * 2 ** attempt)
                continue
            if size is None or part.stat().st_size == size:
                return
        raise DownloadError(f"The transfer of {self.url(url)} kept stopping short of its {size} bytes; run the "
                            "download again to resume it.")

    def _open(self, url: str, offset: int = 0) -> requests.Response:
        url = self.url(url)
        try:
            response = self.session.get(url, headers={"Range": f"bytes={offset}-"} if offset else {},
                                        stream=True, timeout=TIMEOUT)
        except _BROKEN as error:
            raise DownloadError(_unreachable(url, error)) from None
        except requests.RequestException as error:  # a malformed address, say from a mistyped mirror
            raise DownloadError(f"Cannot download {url}: {error}. Check the address (and "
                                f"{config.DOWNLOAD_MIRROR_ENV}, if set).") from None
        if response.status_code >= 400 and not (offset and response.status_code == 416):
            response.close()
            raise DownloadError(self.advise(_refused(url, response)))
        return response

    def _body(self, response: requests.Response, limit: int, have: int = 0) -> Iterator[bytes]:
        """The response's bytes, in chunks; once they would take the file past `limit` bytes, a DownloadError
        instead: a server that never ends its response, or sends more than was asked for, fills neither disk
        nor memory."""
        room = limit - have
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > room:
            raise DownloadError(self.advise(_too_much(response.url, limit)))
        for chunk in response.iter_content(CHUNK_BYTES):
            room -= len(chunk)
            if room < 0:
                raise DownloadError(self.advise(_too_much(response.url, limit)))
            yield chunk

    def _discard(self, part: Path, have: int) -> None:
        part.unlink(missing_ok=True)
        if self.meter:
            self.meter.drop(have)


_BROKEN = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
           requests.exceptions.ContentDecodingError)


def _unreachable(url: str, error: Exception, broke: bool = False) -> str:
    text = str(error).lower()
    if broke:
        why = "the connection broke during the transfer"
    elif isinstance(error, requests.Timeout):
        why = "no answer in time"
    elif "refused" in text:
        why = "the connection was refused"
    elif "resolve" in text or "name or service" in text or "nodename" in text:
        why = "its name could not be looked up"
    else:
        why = "no connection"
    return (f"Cannot reach {urlsplit(url).netloc} ({why}): this computer may be offline, or the server is down. "
            "Check the network and run the download again; what was already downloaded is kept, and the "
            "download resumes from there.")


def _too_much(url: str, limit: int) -> str:
    return (f"{urlsplit(url).netloc} sent more than the expected {format_bytes(limit)} for {url}; stopped, and "
            "what it sent was deleted. The file at the source has changed, or the server (or "
            f"{config.DOWNLOAD_MIRROR_ENV}, if set) is not the right one.")


def _refused(url: str, response: requests.Response) -> str:
    code = response.status_code
    meaning = ("the file is not there (moved or removed?)" if code in (404, 410) else
               "access is denied" if code in (401, 403) else
               "too many requests: wait a while" if code == 429 else
               "the server failed: try again later" if code >= 500 else response.reason or "refused")
    return f"{urlsplit(url).netloc} answered HTTP {code} for {url}: {meaning}."


def _disk_error(error: OSError, root: Path) -> DownloadError:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return DownloadError(f"The disk holding {root} is full. Free some space and run the download again: what "
                             "was already downloaded and verified is kept.")
    return DownloadError(f"Cannot write under {root}: {error.strerror or error}"
                         + (f" ({error.filename})." if error.filename else "."))


def _ensure_space(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if needed + SPACE_MARGIN > free:
        raise DownloadError(f"Not enough disk space in {folder}: {format_bytes(needed)} needed, plus a margin of "
                            f"{format_bytes(SPACE_MARGIN)}, and {format_bytes(free)} free. Free some space, or set "
                            f"{config.DATA_DIR_ENV} to a folder on a larger disk, and run the download again.")


def _verify(path: Path, checksum: str, what: str) -> None:
    """Compare a downloaded file's hash with the published one; a file that does not match is deleted."""
    algorithm, _, expected = checksum.partition(":")
    actual = pooch.file_hash(str(path), alg=algorithm)
    if actual.lower() != expected.lower():
        path.unlink()
        raise DownloadError(f"{what} does not match its published checksum ({algorithm} {expected}, got "
                            f"{actual}), so it was deleted: it was damaged on the way or changed at the source. "
                            "Run the download again; if this happens again, the source has changed.")


def _install_archive(src: Source, downloads: Path, target: Path, transfer: _Transfer,
                     stage: StageCallback) -> None:
    """Download the archive (resuming a .part file), verify it, unpack it into place, then delete it."""
    archive = downloads / src.archive
    if not archive.exists():  # one that exists was verified on an earlier run whose unpacking failed
        part = downloads / f"{src.archive}.part"
        have = min(part.stat().st_size if part.exists() else 0, src.size)
        _ensure_space(downloads, src.size - have)
        stage(f"Downloading {src.archive} from {transfer.host(src.url)}")
        transfer.measure(src.size, have)
        transfer.fetch(src.url, part, src.size)
        stage("Verifying the checksum")
        _verify(part, src.checksum, f"The downloaded {src.archive}")
        os.replace(part, archive)
    stage("Unpacking")
    _unpack(archive, target)
    archive.unlink()


def _unpack(archive: Path, target: Path) -> None:
    """Extract into a hidden folder next to target, then rename it into place: all of it appears, or nothing."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = [member for member in zipped.infolist() if not member.is_dir()]
            _check_expansion(members, archive.stat().st_size)
            _ensure_space(target.parent, sum(member.file_size for member in members))
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".unpacking", dir=target.parent))
            try:
                for member in members:
                    zipped.extract(member, staging)  # drops absolute and ".." parts of member names
                os.rename(staging, target)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
    except zipfile.BadZipFile as error:
        archive.unlink()
        raise DownloadError(f"{archive.name} is not a zip archive SER Studio can unpack ({error}), so it was "
                            "deleted and nothing was unpacked. Run the download again; if this happens again, the "
                            "source has changed.") from None


def _check_expansion(members: list[zipfile.ZipInfo], size: int) -> None:
    """Refuse, before anything is written, an archive that would unpack far beyond its own size (a "zip bomb"),
    or whose members are compressed with a method that zipfile expands in unbounded pieces (only stored and
    deflated members are read a bounded chunk at a time, and never past their stated size)."""
    for member in members:
        if member.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise zipfile.BadZipFile(f"{member.filename} is compressed with method {member.compress_type}, where "
                                     "only stored or deflated members are unpacked")
    unpacked = sum(member.file_size for member in members)
    if unpacked > MAX_EXPANSION * size:
        raise zipfile.BadZipFile(f"it would unpack to {format_bytes(unpacked)}, more than {MAX_EXPANSION} times its "
                                 f"own {format_bytes(size)}")


@dataclass(frozen=True)
class _File:
    """One file of a listed corpus: where it goes (relative, "/"-separated), where it comes from, its size
    and its checksum in pooch's format."""

    path: str
    url: str
    size: int
    checksum: str


def _relative(*parts: str) -> str:
    """A listed path below the corpus folder; one that would leave it is refused."""
    path = PurePosixPath(*[part for part in parts if part])
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise DownloadError(f"The file list names an unsafe path, {str(path)!r}; nothing was installed.")
    return str(path)


def _is_audio(path: str) -> bool:
    return PurePosixPath(path).suffix.lower() in config.AUDIO_EXTENSIONS


def _dataverse_listing(src: Source, transfer: _Transfer) -> tuple[list[_File], dict[str, bytes]]:
    """The audio files of a Dataverse dataset's latest version, with the checksum the repository keeps for each."""
    api = urlsplit(src.url)
    try:
        entries = json.loads(transfer.content(src.url))["data"]["latestVersion"]["files"]
        files = []
        for entry in entries:
            data, checksum = entry["dataFile"], entry["dataFile"]["checksum"]
            path = _relative(entry.get("directoryLabel", ""), data["filename"])
            if _is_audio(path):
                files.append(_File(path, f"{api.scheme}://{api.netloc}/api/access/datafile/{data['id']}",
                                   int(data["filesize"]),
                                   f"{checksum['type'].lower().replace('-', '')}:{checksum['value']}"))
    except (ValueError, KeyError, TypeError) as error:
        raise DownloadError(f"{transfer.host(src.url)} answered the file list of {src.title} with something "
                            f"unexpected ({error!r}); nothing was installed.") from None
    return files, {}


def _lfs_pointer(data: bytes) -> tuple[int, str] | None:
    """(size, "sha256:<oid>") of a Git LFS pointer file, or None when the bytes are the file itself."""
    if not data.startswith(b"version https://git-lfs.github.com/spec/"):
        return None
    fields = dict(line.split(" ", 1) for line in data.decode("ascii").splitlines() if " " in line)
    return int(fields["size"]), fields["oid"]


def _lfs_listing(src: Source, transfer: _Transfer, snapshot: Path) -> tuple[list[_File], dict[str, bytes]]:
    """The audio of a Git LFS repository from the pointers in a snapshot of it, and the side tables it holds."""
    snapshot.unlink(missing_ok=True)  # the repository may have changed since an earlier run: fetch it afresh
    files, extras = [], {}
    try:
        transfer.fetch(src.url, snapshot)
        packed = snapshot.stat().st_size
        room = MAX_EXPANSION * packed
        with gzip.open(snapshot) as unzipped, tarfile.open(fileobj=_BoundedReads(unzipped), mode="r:") as tar:
            while (member := tar.next()) is not None:  # a member is skipped, or read only after the checks below
                tar.members.clear()  # tarfile keeps every header it reads: millions, in a snapshot of empty entries
                room -= tarfile.BLOCKSIZE + member.size
                if room < 0:
                    raise DownloadError(_odd_snapshot(src, transfer, f"unpacks to more than {MAX_EXPANSION} times "
                                                      f"its own {format_bytes(packed)}"))
                path = member.name.partition("/")[2]  # below the snapshot's top folder, e.g. CREMA-D-master/
                audio = path.startswith(f"{src.audio_folder}/") and _is_audio(path)
                if not member.isfile() or not (audio or path in src.extra_files):
                    continue
                limit, what = (LFS_POINTER_LIMIT, "a Git LFS pointer") if audio else (IN_MEMORY_LIMIT, "a table")
                if member.size > limit:
                    raise DownloadError(_odd_snapshot(src, transfer, f"holds {path} of {format_bytes(member.size)}, "
                                                      f"more than the {format_bytes(limit)} of {what}"))
                data = tar.extractfile(member).read()
                pointer = _lfs_pointer(data)
                if pointer:
                    files.append(_File(_relative(path), f"{src.media_url}/{path}", *pointer))
                elif path in src.extra_files:
                    extras[_relative(path)] = data
    except (tarfile.TarError, gzip.BadGzipFile, zlib.error, EOFError, ValueError, KeyError) as error:
        raise DownloadError(f"The repository snapshot from {transfer.host(src.url)} could not be read "
                            f"({error!r}); nothing was installed. Run the download again.") from None
    finally:
        snapshot.unlink(missing_ok=True)
    return files, extras


class _BoundedReads:
    """A file whose reads return at most IN_MEMORY_LIMIT bytes: tarfile reads a long name or pax header whole
    into memory, at whatever size its header states."""

    def __init__(self, file):
        self.file = file

    def read(self, size: int = -1) -> bytes:
        if not 0 <= size <= IN_MEMORY_LIMIT:
            raise tarfile.ReadError(f"a header record of {size} bytes, beyond {format_bytes(IN_MEMORY_LIMIT)}")
        return self.file.read(size)

    def __getattr__(self, name: str):  # seek, tell: as the file's
        return getattr(self.file, name)


def _odd_snapshot(src: Source, transfer: _Transfer, what: str) -> str:
    return transfer.advise(f"The repository snapshot from {transfer.host(src.url)} {what}; nothing was installed: "
                           "the repository has changed, or the server is not the right one.")


def _install_files(src: Source, files: list[_File], extras: dict[str, bytes], target: Path, transfer: _Transfer,
                   stage: StageCallback) -> None:
    """Fetch and verify each listed file in a hidden folder, then rename the folder into place."""
    audio = sum(_is_audio(file.path) for file in files)
    if audio != src.files:
        raise DownloadError(transfer.advise(
            f"{transfer.host(src.url)} lists {audio} audio files for {src.title} where {src.files} are expected, so "
            "nothing was installed: the source has changed or is incomplete."))
    total = sum(file.size for file in files)
    if total > SIZE_MARGIN * src.size:
        raise DownloadError(transfer.advise(
            f"{transfer.host(src.url)} lists {format_bytes(total)} of files for {src.title}, where {src.size_text} "
            "is expected, so nothing was downloaded: the source has changed or is not the right one."))
    staging = target.with_name(f".{target.name}.partial")  # kept between runs: verified files stay verified
    todo = [file for file in files if not (staging / file.path).exists()]
    parts = {file.path: staging / f"{file.path}.part" for file in todo}
    have = sum(part.stat().st_size for part in parts.values() if part.exists())
    remaining = sum(file.size for file in todo) - have
    _ensure_space(target.parent, remaining)
    stage(f"Downloading {len(todo)} of {len(files)} files")
    transfer.measure(total, total - remaining)
    for file in todo:
        part = parts[file.path]
        part.parent.mkdir(parents=True, exist_ok=True)
        transfer.fetch(file.url, part, file.size)
        _verify(part, file.checksum, f"{file.path} from {transfer.host(file.url)}")
        os.replace(part, staging / file.path)
    for path, data in extras.items():
        (staging / path).parent.mkdir(parents=True, exist_ok=True)
        (staging / path).write_bytes(data)
    os.rename(staging, target)
