"""A class's own recordings, kept as a custom corpus under the data root: add, list, relabel, delete, rename.

The layout is the one corpora.build_catalog reads as a custom corpus, so the catalog, Explore, Train and
evaluation treat it like any corpus:

    <data root>/<corpus>/<label>/<speaker>_<n>.wav    mono 16-bit WAV at config.RECORDING_RATE
    <data root>/<corpus>/metadata.csv                 file, speaker, label, gender, date

The files are the truth: a clip exists while its WAV does, its label is its folder, its speaker the prefix
of its name (unless metadata.csv names one, as the catalog reads it). metadata.csv adds gender and the date
recorded. Every write goes to a hidden temporary file in the destination folder (the catalog skips hidden
files) and is put in place by a rename, so a crash leaves no partial file; a clip whose row is missing (a
crash between its audio and metadata.csv) is still cataloged by its folder and name, and its row is rebuilt
at the next change. A change is whole or not at all: the new metadata.csv is written before any clip moves
(a full disk stops it there), and on an error the moved clips go back and a new clip is taken back.
Relabelling and renaming move a file with one rename rather than copy-then-delete, so a clip is never
in two folders at once (a duplicate with two labels would leak between folds). Changes to one corpus are
serialised by a thread lock and a lock file in it, so two app servers on one data folder, or the command line
beside the app, never pick the same new name or lose each other's metadata rows.
"""
from __future__ import annotations

import csv
import errno
import hmac
import os
import re
import threading
import unicodedata
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from . import config
from .audio import AudioSource, audio_info, load_audio, to_wav_bytes
from .corpora import CUSTOM_METADATA, corpus_slug, parse_custom
from .errors import DatasetError, OptionError, SerError, TooLongError
from .files import hold_lock, staged, write_atomically

METADATA_COLUMNS: tuple[str, ...] = ("file", "speaker", "label", "gender", "date")
CLIP_COLUMNS: tuple[str, ...] = METADATA_COLUMNS + ("duration", "path")
GENDERS: tuple[str, ...] = ("female", "male")

_SPEAKER = re.compile(r"^[^\W_]{1,40}$")              # letters and digits: the catalog reads up to the first _ or -
_NUMBERED = re.compile(r"^(?P<speaker>[^\W_]+)_(?P<number>\d+)$")
_MAX_CORPUS_NAME = 60
_LOCK = threading.Lock()
_LOCK_FILE = ".lock"  # hidden, so the catalog skips it


def corpus_name(name: str) -> str:
    """The folder and catalog name of a corpus as typed ("Mrs Smith's class" -> "mrs-smith-s-class")."""
    if not re.search(r"[^\W_]", name or ""):
        raise OptionError("Name the corpus: letters or digits, e.g. my-class.")
    slug = corpus_slug(name)
    if len(slug) > _MAX_CORPUS_NAME:
        raise OptionError(f"A corpus name has at most {_MAX_CORPUS_NAME} characters; {name!r} has more.")
    return slug


def validate_speaker(name: str) -> str:
    """The speaker name as stored (lower case, so "Ana" and "ana" stay one speaker), or OptionError.

    A speaker is required: speaker-independent protocols keep each speaker's clips on one side of a split.
    """
    cleaned = unicodedata.normalize("NFKC", name or "").strip().casefold()
    if not cleaned:
        raise OptionError("Enter the speaker's name (or a code such as s01): speaker-independent evaluation "
                          "needs to know who speaks in each clip.")
    if not _SPEAKER.match(cleaned):
        raise OptionError(f"{name.strip()!r} cannot be a speaker name: it becomes part of each clip's file name, "
                          "so use up to 40 letters and digits, without spaces, '_' or '-' (e.g. ana or s01).")
    return cleaned


def list_corpora(*, data_dir: str | os.PathLike | None = None) -> list[str]:
    """Corpora under the data root laid out as this module writes them (one folder per label)."""
    root = config.data_root(data_dir)
    if not root.is_dir():
        return []
    return sorted(entry.name for entry in root.iterdir()
                  if entry.is_dir() and entry.name == corpus_slug(entry.name) and any(_entries(entry))
                  and _is_corpus_folder(entry))


def check_writable(data_dir: str | os.PathLike | None = None) -> Path:
    """The data root, when new clips can be saved there (it, or the folder it would be made in, takes a new
    file); else DatasetError saying so before anyone records, and where to keep a class's clips instead."""
    root = config.data_root(data_dir)
    place = next((folder for folder in (root, *root.parents) if folder.is_dir()), None)
    try:
        if place is None:
            raise FileNotFoundError(errno.ENOENT, "no such folder")
        _probe(place)
    except OSError as error:
        instead = Path.home() / "ser-data"
        raise DatasetError(
            f"Clips cannot be saved in the data folder {root} ({error.strerror or error}): it may be read-only, "
            f"such as shared corpora. Keep a class's recordings in a folder you can write to, e.g. start the "
            f"app with `streamlit run streamlit_app.py -- --data-dir {instead}` (or set {config.DATA_DIR_ENV}); "
            "the corpora can live there too.") from None
    return root


def _probe(folder: Path) -> None:
    """Create and remove a hidden file in `folder`: what os.access cannot tell (a read-only mount for root)."""
    import tempfile

    with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
        pass


def load_clip(audio: AudioSource | np.ndarray, *, sr: int | None = None, name: str | None = None) -> np.ndarray:
    """A clip as it will be saved: mono float32 at RECORDING_RATE, its level untouched.

    `audio` is a path, bytes, an upload, or samples (float, -1..1) at rate `sr`. Raises the AudioError of
    load_audio for empty, non-audio, damaged, silent or too short input, and TooLongError past
    MAX_RECORDING_DURATION. The pipelines read at RECORDING_RATE and trim silence themselves, so saving at
    that rate untrimmed loses nothing they use, keeps a class's corpus at one rate whatever the phones or
    browsers recorded at (the health check flags mixed rates), and makes files a third the size of 48 kHz.
    """
    if isinstance(audio, np.ndarray):
        if sr is None:
            raise OptionError("Give the sample rate (sr) of the samples.")
        audio = to_wav_bytes(np.asarray(audio, dtype=np.float32), sr)
    elif name is None:
        given = audio if isinstance(audio, (str, os.PathLike)) else getattr(audio, "name", None)
        name = Path(given).name if isinstance(given, (str, os.PathLike)) else None
    name = name or "the recording"
    try:
        return load_audio(audio, sr=config.RECORDING_RATE, normalize=False,
                          max_duration=config.MAX_RECORDING_DURATION, name=name)
    except TooLongError:
        raise TooLongError(f"{name}: this recording is longer than {config.MAX_RECORDING_DURATION:g} s; a corpus "
                           "clip holds one utterance (RAVDESS's are 3 to 5 s). Record or cut a shorter one.") from None


def add_clip(corpus: str, audio: AudioSource | np.ndarray, *, speaker: str, label: str, gender: str | None = None,
             sr: int | None = None, name: str | None = None,
             data_dir: str | os.PathLike | None = None) -> dict:
    """Save a clip as <corpus>/<label>/<speaker>_<n>.wav and list it in metadata.csv; returns its metadata row.

    Everything is checked before anything is written: a bad clip, speaker, label or gender writes nothing.
    A speaker already in the corpus keeps its spelling there, and its gender when none is given.
    """
    speaker, label, gender = validate_speaker(speaker), _check_label(label), _check_gender(gender)
    # Encoded here and written by Python, whose errors name their cause ("No space left on device") where
    # libsndfile's say only "System error"; to_wav_bytes clips to full scale, which resampling may overshoot.
    wav = to_wav_bytes(load_clip(audio, sr=sr, name=name), config.RECORDING_RATE)
    folder = _corpus_folder(corpus, data_dir)
    with _changing(folder, "the clip was not saved"):
        (folder / label).mkdir(parents=True, exist_ok=True)
        with _locked(folder):
            columns, rows = _load(folder)
            known = [row for row in rows if row["speaker"].casefold() == speaker]  # "Eve" in a hand-made table
            target = _write_new(folder, label, speaker, wav)
            row = {"file": _key(target), "speaker": known[0]["speaker"] if known else speaker, "label": label,
                   "gender": gender or next((other["gender"] for other in known if other["gender"]), ""),
                   "date": _now()}
            try:
                _commit(folder, columns, rows + [row])
            except BaseException:
                with suppress(OSError):
                    target.unlink()  # a clip without its row would lose its gender: take it back
                raise
    return row


def list_clips(corpus: str, *, data_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """The corpus's clips as the catalog sees them (see CLIP_COLUMNS), oldest first; empty if none yet."""
    with _LOCK:
        folder = _corpus_folder(corpus, data_dir)
        rows = _load(folder)[1] if folder.is_dir() else []
    for row in rows:
        row["path"] = str(folder / row["file"])
        try:
            row["duration"] = audio_info(row["path"]).duration
        except SerError:
            row["duration"] = np.nan  # unreadable: the catalog leaves it out and the health check names it
    frame = pd.DataFrame(rows, columns=list(CLIP_COLUMNS))
    return frame.sort_values(["date", "file"], kind="stable").reset_index(drop=True)


def relabel_clip(corpus: str, file: str, *, label: str, data_dir: str | os.PathLike | None = None) -> dict:
    """Move a clip (`file` as list_clips gives it, e.g. "happy/ana_001.wav") to another label's folder."""
    label = _check_label(label)
    folder = _corpus_folder(corpus, data_dir)
    with _changing(folder), _locked(folder):
        columns, rows = _load(folder)
        row = _find(rows, file, folder)
        if row["label"] == label:
            return row
        source = folder / row["file"]
        target = folder / label / source.name
        if target.exists():
            raise DatasetError(f"{_key(target)} already exists in {folder}; rename or delete one of them first.")
        target.parent.mkdir(exist_ok=True)
        moved = row | {"file": _key(target), "label": label}
        _commit(folder, columns, [moved if other is row else other for other in rows], [(source, target)])
        _remove_if_empty(source.parent)
    return moved


def delete_clip(corpus: str, file: str, *, data_dir: str | os.PathLike | None = None) -> None:
    """Delete a clip's file and its metadata row: the clip is first moved to a hidden name, so that it can go back
    if the new metadata.csv cannot be put in place."""
    folder = _corpus_folder(corpus, data_dir)
    with _changing(folder), _locked(folder):
        columns, rows = _load(folder)
        row = _find(rows, file, folder)
        path = folder / row["file"]
        hidden = path.with_name(f".{path.name}.deleting")
        _commit(folder, columns, [other for other in rows if other is not row], [(path, hidden)])
        with suppress(OSError):  # deleted all the same: hidden, and without its row
            hidden.unlink()
        _remove_if_empty(path.parent)


def rename_speaker(corpus: str, old: str, new: str, *, data_dir: str | os.PathLike | None = None) -> int:
    """Give all of a speaker's clips another speaker name (file names and metadata); returns how many.

    Renaming onto an existing speaker merges the two, which is how a misspelt name is fixed.
    """
    new = validate_speaker(new)
    folder = _corpus_folder(corpus, data_dir)
    with _changing(folder), _locked(folder):
        columns, rows = _load(folder)
        theirs = [row for row in rows if row["speaker"] == old]
        if not theirs:
            raise DatasetError(f"No clips of speaker {old!r} in {folder}.")
        if old == new:
            return 0
        first, moves = _next_number(folder, new), []
        for number, row in enumerate(theirs, first):
            source = folder / row["file"]
            target = source.with_name(f"{new}_{number:03d}{source.suffix}")
            moves.append((source, target))
            row.update(file=_key(target), speaker=new)
        _commit(folder, columns, rows, moves)
    return len(theirs)


def passcode_required() -> bool:
    """Whether relabelling, deleting and renaming ask for the class passcode ($SER_RECORD_PASSCODE is set)."""
    return bool(os.environ.get(config.RECORD_PASSCODE_ENV))


def passcode_matches(typed: str) -> bool:
    """Whether `typed` is the class passcode, or none is set; compared in constant time."""
    passcode = os.environ.get(config.RECORD_PASSCODE_ENV, "")
    return not passcode or hmac.compare_digest(typed.encode(), passcode.encode())


def _check_label(label: str) -> str:
    if label not in config.LABELS:
        raise OptionError(f"Unknown label {label!r}: choose one of {', '.join(config.LABELS)}.")
    return label


def _check_gender(gender: str | None) -> str:
    """"" when not given; the catalog shows it as missing."""
    if gender and gender not in GENDERS:
        raise OptionError(f"Unknown gender {gender!r}: choose {' or '.join(GENDERS)}, or leave it out.")
    return gender or ""


def _entries(folder: Path) -> Iterator[Path]:
    """A folder's entries that the catalog looks at (it skips hidden ones)."""
    return (entry for entry in folder.iterdir() if not entry.name.startswith(".") and entry.name != "__MACOSX")


def _label_folder(path: Path) -> bool:
    """Whether the catalog reads this folder as one label of a custom corpus ("happy", "Anger", ...)."""
    return path.is_dir() and parse_custom(path / "clip.wav") is not None


def _is_corpus_folder(folder: Path) -> bool:
    """Whether a folder holds nothing but label folders and metadata.csv, so writing into it mixes nothing."""
    return all(entry.name == CUSTOM_METADATA or _label_folder(entry) for entry in _entries(folder))


def _corpus_folder(corpus: str, data_dir: str | os.PathLike | None) -> Path:
    """<data root>/<corpus name>; refused when a folder of that name holds something else (another corpus)."""
    folder = config.data_root(data_dir).resolve() / corpus_name(corpus)
    if folder.is_dir() and not _is_corpus_folder(folder):
        raise OptionError(f"{folder} already holds files other than label folders and {CUSTOM_METADATA}; "
                          "choose another corpus name.")
    return folder


@contextmanager
def _changing(folder: Path, outcome: str = "nothing was changed") -> Iterator[None]:
    """Disk errors (full, read-only) as a message a user can act on; `outcome` says what became of the change."""
    try:
        yield
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DatasetError(f"Could not save the change in {folder}: the disk is full. Free some space and try "
                               f"again; {outcome}.") from error
        raise DatasetError(f"Could not save the change in {folder}: {error.strerror or error}. Check that the data "
                           f"folder is writable and has free space; {outcome}.") from error


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One change at a time to a corpus: across this server's sessions (_LOCK) and across processes (a lock
    file in the corpus folder), so that no two pick one new name or write metadata.csv from one old copy."""
    if not folder.is_dir():
        raise DatasetError(f"There is no corpus {folder.name} in {folder.parent}: it may have been deleted in "
                           "another session. Reload the page.")
    with _LOCK, hold_lock(folder / _LOCK_FILE):
        yield


def _key(path: Path) -> str:
    """A clip's `file` in metadata.csv: "<label folder>/<name>", as the catalog looks it up."""
    return f"{path.parent.name}/{path.name}"


def _now(moment: datetime | None = None) -> str:
    """ISO 8601 local time with its offset, to the second: readable, sortable, and unambiguous across time zones."""
    return (moment or datetime.now()).astimezone().isoformat(timespec="seconds")


def _find(rows: list[dict], file: str, folder: Path) -> dict:
    for row in rows:
        if row["file"] == file:
            return row
    raise DatasetError(f"No clip {file} in {folder}: it may have been deleted or moved in another session. "
                       "Reload the page.")


def _next_number(folder: Path, speaker: str) -> int:
    """One past the speaker's highest <speaker>_<n> in any label folder of the corpus."""
    used = [int(match["number"]) for label_folder in _entries(folder) if _label_folder(label_folder)
            for path in label_folder.iterdir()
            if (match := _NUMBERED.match(path.stem)) and match["speaker"].casefold() == speaker]
    return max(used, default=0) + 1


def _write_new(folder: Path, label: str, speaker: str, wav: bytes) -> Path:
    """Write a clip as <label>/<speaker>_<n>.wav, the next free n, never over a file that is there: a process
    that does not take the lock (an older version, a file system without locks) may have taken the name."""
    while True:
        target = folder / label / f"{speaker}_{_next_number(folder, speaker):03d}.wav"
        try:
            return write_atomically(target, lambda temporary: Path(temporary).write_bytes(wav), durable=True,
                                    overwrite=False)
        except FileExistsError:
            if not os.path.lexists(target):  # not the name taken: a folder or file in the way
                raise


def _read_metadata(folder: Path) -> tuple[list[str], dict[str, dict[str, str]]]:
    """metadata.csv's columns and rows by `file`; a table that cannot be read stops the change, never is overwritten."""
    path = folder / CUSTOM_METADATA
    if not path.is_file():
        return [], {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            rows = [{key.strip().lower(): (value or "").strip() for key, value in row.items() if isinstance(key, str)}
                    for row in reader]
            columns = [name.strip().lower() for name in reader.fieldnames or []]
    except (UnicodeDecodeError, csv.Error) as error:
        raise DatasetError(f"{path} cannot be read ({error}); repair it, or move it away to rebuild it from the "
                           "clips (genders and dates would be lost).") from error
    return columns, {row.get("file", "").replace("\\", "/").removeprefix("./"): row for row in rows}


def _load(folder: Path) -> tuple[list[str], list[dict]]:
    """metadata.csv's columns, and one row per clip file as the catalog reads it.

    Rows whose file is gone are dropped; a file without a row gets one (speaker from its name, date from its
    modification time, gender from the speaker's other clips): what a crash mid-change leaves is repaired.
    A hand-made table's other columns are kept, and its rows without a date get the file's.
    """
    columns, table = _read_metadata(folder)
    rows, rebuilt = [], []
    for label_folder in sorted(entry for entry in _entries(folder) if _label_folder(entry)):
        for path in sorted(label_folder.iterdir()):
            if path.name.startswith(".") or path.suffix.lower() not in config.AUDIO_EXTENSIONS:
                continue
            parsed = parse_custom(path)
            entry = table.get(_key(path)) or table.get(path.name)
            if entry is None:
                entry = {}
                rebuilt.append(len(rows))
            speaker = entry.get("speaker") or parsed["speaker"].removeprefix(f"{parsed['corpus']}_")
            rows.append(entry | {"file": _key(path), "label": parsed["label"], "speaker": speaker,
                                 "gender": entry.get("gender") or entry.get("sex") or "",
                                 "date": entry.get("date") or _now(datetime.fromtimestamp(path.stat().st_mtime))})
    genders = {row["speaker"]: row["gender"] for row in rows if row["gender"]}
    for index in rebuilt:
        rows[index]["gender"] = genders.get(rows[index]["speaker"], "")
    return columns, rows


def _commit(folder: Path, columns: list[str], rows: list[dict], moves: Sequence[tuple[Path, Path]] = ()) -> None:
    """Rewrite metadata.csv whole (its own columns first, any others the table had after them) and move clips,
    as one change: the new table is written first, the clips moved, then the table put in place. On an error
    the moved clips go back and the old table stays."""
    fields = list(METADATA_COLUMNS) + [name for name in columns if name not in METADATA_COLUMNS]

    def write(temporary: str) -> None:
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(sorted(rows, key=lambda row: row["file"]))

    done = []
    try:
        with staged(folder / CUSTOM_METADATA, write, durable=True):
            for source, target in moves:
                os.replace(source, target)
                done.append((source, target))
    except BaseException:
        try:
            for source, target in reversed(done):
                os.replace(target, source)
        except OSError as error:
            raise DatasetError(f"Could not finish the change in {folder}, nor undo it ({error.strerror or error}): "
                               "some clips have their new name or label and the others their old one; none is "
                               "lost. Reload the page to see them.") from error
        raise


def _remove_if_empty(folder: Path) -> None:
    """Drop a label folder its last clip left (rmdir refuses a folder that still holds anything)."""
    with suppress(OSError):
        folder.rmdir()
