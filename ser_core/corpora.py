"""Find the emotion corpora under a data root, catalog their clips, and check them for known problems.

Each corpus is recognised by its file names and folder layout, wherever a user unpacked it:
RAVDESS, TESS, CREMA-D, SAVEE, and custom folders (one subfolder per emotion label, as a teacher
would record them). Every label is mapped onto config.LABELS, and every speaker id is prefixed
with its corpus ("ravdess_01", "tess_OAF", "cremad_1001", "savee_DC", "<custom>_<name>") so that
speaker-independent splits stay correct when corpora are combined.
"""
from __future__ import annotations

import csv
import hashlib
import math
import os
import re
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import pandas as pd
import soundfile as sf

from . import config
from .audio import UNKNOWN_FRAMES, printable
from .errors import DatasetError, OptionError

# RAVDESS: MM-VV-EE-II-SS-RR-AA (modality, vocal channel, emotion, intensity, statement, repetition, actor).
_RAVDESS_NAME = re.compile(r"^0[123]-(0[12])-(0[1-8])-(0[12])-(0[12])-0[12]-(\d\d)$")
_RAVDESS_EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad",
                     "05": "angry", "06": "fearful", "07": "disgust", "08": "surprised"}
_RAVDESS_CHANNELS = {"01": "speech", "02": "song"}
_RAVDESS_INTENSITIES = {"01": "normal", "02": "strong"}
_RAVDESS_STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}

# TESS: <SPEAKER>_<word>_<emotion>; "OA_" is a misspelling of "OAF_" in the original release.
# The speaker prefix is matched in upper case only, so a custom clip "ya_..." is not taken for TESS.
_TESS_NAME = re.compile(r"^(OAF|YAF|OA|YA)_((?i:[a-z']+))_"
                        r"((?i:angry|disgust|fear|happy|neutral|ps|pleasant_surprised?|sad))$")
_TESS_EMOTIONS = {"angry": "angry", "disgust": "disgust", "fear": "fearful", "happy": "happy",
                  "neutral": "neutral", "ps": "surprised", "pleasant_surprise": "surprised",
                  "pleasant_surprised": "surprised", "sad": "sad"}

# CREMA-D: <actor>_<sentence>_<emotion>_<intensity>; sentences as listed by the corpus's authors.
_CREMAD_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_(ANG|DIS|FEA|HAP|NEU|SAD)_(LO|MD|HI|XX)$")
_CREMAD_EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fearful", "HAP": "happy",
                    "NEU": "neutral", "SAD": "sad"}
_CREMAD_INTENSITIES = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
_CREMAD_SENTENCES = {
    "IEO": "It's eleven o'clock", "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting", "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full", "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock", "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket", "ITS": "I think I've seen this before",
    "TSI": "The surface is slick", "WSI": "We'll stop in a couple of minutes",
}
_CREMAD_DEMOGRAPHICS = "videodemographics.csv"  # columns ActorID, Age, Sex, Race, Ethnicity

# SAVEE: <speaker>/<code><nn> in the original layout, <speaker>_<code><nn> in the flat Kaggle copy.
_SAVEE_SPEAKERS = ("DC", "JE", "JK", "KL")
_SAVEE_CODE = r"((?i:sa|su|a|d|f|h|n))(\d\d)"
_SAVEE_FLAT_NAME = re.compile(rf"^({'|'.join(_SAVEE_SPEAKERS)})_{_SAVEE_CODE}$")
_SAVEE_FOLDER_NAME = re.compile(rf"^{_SAVEE_CODE}$")
_SAVEE_EMOTIONS = {"a": "angry", "d": "disgust", "f": "fearful", "h": "happy", "n": "neutral",
                   "sa": "sad", "su": "surprised"}

# Custom corpora: label folder names understood (compared in lower case, with "-" and spaces read as "_").
_LABEL_FOLDERS = {label: label for label in config.LABELS} | {
    "anger": "angry", "happiness": "happy", "joy": "happy", "sadness": "sad", "fear": "fearful",
    "afraid": "fearful", "scared": "fearful", "disgusted": "disgust", "surprise": "surprised",
    "pleasant_surprise": "surprised", "pleasant_surprised": "surprised", "ps": "surprised",
}
CUSTOM_METADATA = "metadata.csv"  # columns file, speaker, and optionally gender (or sex)
_CUSTOM_SPEAKER = re.compile(r"^([^_-]+)[_-]")
_GENDERS = {"m": "male", "male": "male", "man": "male", "f": "female", "female": "female", "woman": "female"}

# What each extension may hold: libsndfile's format names and FFmpeg's demuxer names.
_EXPECTED_FORMATS = {
    ".wav": {"wav", "wavex", "rf64", "w64"}, ".flac": {"flac"}, ".aif": {"aiff"}, ".aiff": {"aiff"},
    ".ogg": {"ogg"}, ".opus": {"ogg"}, ".mp3": {"mp3"}, ".m4a": {"m4a", "mp4", "mov"},
    ".aac": {"aac"}, ".webm": {"webm", "matroska"},
}

NAME_COLUMNS: tuple[str, ...] = (
    "corpus", "speaker", "gender", "label", "intensity", "statement", "vocal_channel", "path", "size_bytes",
)
AUDIO_COLUMNS: tuple[str, ...] = ("duration", "sample_rate", "channels", "format", "encoding")
CATALOG_COLUMNS: tuple[str, ...] = NAME_COLUMNS + AUDIO_COLUMNS
CORPUS_NAMES: tuple[str, ...] = ("ravdess", "tess", "cremad", "savee")

FINDING_KINDS: dict[str, str] = {
    "no_data": "no usable data",
    "unreadable": "files that cannot be read as audio (left out of the catalog)",
    "silent": "clips with no sound: digital silence, or one constant value",
    "unusable": "clips whose header reads but whose audio cannot be used (damaged, too short or too long)",
    "unparsed_name": "audio files whose names no corpus scheme accepts (ignored)",
    "irregular_name": "names that deviate from their corpus's scheme but could be read",
    "format_mismatch": "files whose content is another format than their extension says",
    "duplicate": "identical recordings (a copy on both sides of a split inflates scores)",
    "stereo": "files with more than one channel",
    "unusual_sample_rate": "sample rates unlike the rest of their corpus",
}


def _row(corpus: str, speaker: str, label: str, gender: str | None = None, intensity: str | None = None,
         statement: str | None = None, vocal_channel: str | None = None) -> dict:
    """What a path tells about a clip, every name column present and the speaker made unique.

    A parser adds a "note" when it corrected a known irregularity in the name; the health check reports it.
    """
    return {"corpus": corpus, "speaker": f"{corpus}_{speaker}", "gender": gender, "label": label,
            "intensity": intensity, "statement": statement, "vocal_channel": vocal_channel}


def parse_ravdess(path: Path) -> dict | None:
    """RAVDESS `03-01-05-02-01-01-12.wav`: everything is in the name; odd actors are male."""
    match = _RAVDESS_NAME.match(path.stem)
    if not match:
        return None
    channel, emotion, intensity, statement, actor = match.groups()
    if not 1 <= int(actor) <= 24:
        return None
    return _row("ravdess", actor, _RAVDESS_EMOTIONS[emotion], gender="male" if int(actor) % 2 else "female",
                intensity=_RAVDESS_INTENSITIES[intensity], statement=_RAVDESS_STATEMENTS[statement],
                vocal_channel=_RAVDESS_CHANNELS[channel])


def parse_tess(path: Path) -> dict | None:
    """TESS `OAF_back_angry.wav`: two actresses saying "Say the word ___"; `OA_` is read as OAF."""
    match = _TESS_NAME.match(path.stem)
    if not match:
        return None
    prefix, word, emotion = match.groups()
    row = _row("tess", prefix if prefix.endswith("F") else prefix + "F", _TESS_EMOTIONS[emotion.lower()],
               gender="female", statement=f"Say the word {word.lower()}")
    if not prefix.endswith("F"):
        row["note"] = f"speaker prefix {prefix}_ read as {prefix}F"
    return row


def parse_cremad(path: Path) -> dict | None:
    """CREMA-D `1001_DFA_ANG_XX.wav`; gender is not in the name but in VideoDemographics.csv."""
    match = _CREMAD_NAME.match(path.stem)
    if not match:
        return None
    actor, sentence, emotion, intensity = match.groups()
    if not 1001 <= int(actor) <= 1091:
        return None
    return _row("cremad", actor, _CREMAD_EMOTIONS[emotion], intensity=_CREMAD_INTENSITIES[intensity],
                statement=_CREMAD_SENTENCES.get(sentence, sentence))


def parse_savee(path: Path) -> dict | None:
    """SAVEE `DC/a01.wav` or `DC_a01.wav`: four male speakers; the statement is the sentence code."""
    flat = _SAVEE_FLAT_NAME.match(path.stem)
    in_folder = _SAVEE_FOLDER_NAME.match(path.stem)
    if flat:
        speaker, code, number = flat.groups()
    elif in_folder and path.parent.name in _SAVEE_SPEAKERS:
        speaker, (code, number) = path.parent.name, in_folder.groups()
    else:
        return None
    code = code.lower()
    return _row("savee", speaker, _SAVEE_EMOTIONS[code], gender="male", statement=f"{code}{number}")


def parse_custom(path: Path) -> dict | None:
    """A clip in `<corpus>/<label>/<speaker>_<anything>.wav`; metadata.csv may name the speaker instead."""
    label = _LABEL_FOLDERS.get(re.sub(r"[\s-]+", "_", path.parent.name.strip().lower()))
    if label is None:
        return None
    speaker = _CUSTOM_SPEAKER.match(path.stem)
    return _row(corpus_slug(path.parent.parent.name), speaker.group(1) if speaker else "unknown", label)


# Tried in this order: the strict numeric schemes first, custom folders last (any file name fits them).
PARSERS: tuple[Callable[[Path], dict | None], ...] = (
    parse_ravdess, parse_cremad, parse_savee, parse_tess, parse_custom,
)


def parse_name(path: Path) -> dict | None:
    """The first parser's reading of a path, or None when no corpus names files this way."""
    for parser in PARSERS:
        row = parser(path)
        if row:
            return row
    return None


@dataclass(frozen=True)
class Example:
    """One of the shipped example clips (config.EXAMPLES_DIR): a voice no model trained here has heard."""

    path: Path
    label: str
    speaker: str
    voice: str  # who speaks, in words: "a man of 50"


# Who speaks in each example clip (examples/README.md), by CREMA-D actor.
_EXAMPLE_VOICES = {"cremad_1090": "a man of 50", "cremad_1091": "a woman of 29"}


def example_clips() -> list[Example]:
    """The shipped example clips, by voice then emotion; none when the folder is missing (a trimmed install)."""
    clips = []
    for path in sorted(config.EXAMPLES_DIR.glob("*.flac")):
        row = parse_name(path)
        if row and row["speaker"] in _EXAMPLE_VOICES:
            clips.append(Example(path, row["label"], row["speaker"], _EXAMPLE_VOICES[row["speaker"]]))
    return clips


def clip_counts(catalog: pd.DataFrame, by: str = "corpus") -> pd.DataFrame:
    """Clips per emotion (rows, in config.LABELS order) and per value of `by` (columns: corpus, gender...)."""
    counts = catalog.groupby(["label", by]).size().unstack(fill_value=0)
    return counts.reindex([label for label in config.LABELS if label in counts.index])


def corpus_slug(name: str) -> str:
    """A folder name as a custom corpus name, never one of the named corpora's (their speakers would mix)."""
    slug = re.sub(r"[\W_]+", "-", name.casefold()).strip("-") or "custom"
    return f"{slug}-custom" if slug in CORPUS_NAMES else slug


def _walk(root: Path) -> Iterator[tuple[str, int]]:
    """(path, size) of every file under root, skipping hidden entries; linked folders are followed once."""
    seen, folders = set(), [str(root)]
    while folders:
        folder = folders.pop()
        real = os.path.realpath(folder)
        if real in seen:
            continue
        seen.add(real)
        try:
            with os.scandir(folder) as scan:
                entries = list(scan)
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith(".") or entry.name == "__MACOSX":
                continue
            try:
                if entry.is_dir():
                    folders.append(entry.path)
                elif entry.is_file():
                    yield entry.path, entry.stat().st_size
            except OSError:
                continue


def _read_csv(path: str) -> list[dict[str, str]]:
    """Rows of a small CSV with lower-case column names; an unreadable table counts as empty."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return [{key.strip().lower(): value.strip() for key, value in row.items()
                     if isinstance(key, str) and isinstance(value, str)}
                    for row in csv.DictReader(handle)]
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


@dataclass
class _Scan:
    """Everything one walk of the data root found; rows carry the name columns, path and size.

    Paths are printable: the bytes of a name that are not UTF-8 show as U+FFFD (see _misnamed).
    """

    root: Path
    rows: list[dict]
    unparsed: list[str]


def _scan(root: Path) -> _Scan:
    """Walk the root once, parse every audio file's path, and add what side tables say."""
    if not root.is_dir():
        problem = "is not a folder" if root.exists() else "does not exist"
        raise DatasetError(f"The data folder {root} {problem}. {_how_to_unpack(root)}")
    audio, tables = [], defaultdict(list)
    for path, size in _walk(root):
        name = os.path.basename(path).lower()
        if os.path.splitext(name)[1] in config.AUDIO_EXTENSIONS:
            audio.append((path, size))
        elif name in (_CREMAD_DEMOGRAPHICS, CUSTOM_METADATA):
            tables[name].append(path)
    genders = {f"cremad_{row['actorid']}": _GENDERS.get(row.get("sex", "").lower())
               for table in sorted(tables[_CREMAD_DEMOGRAPHICS]) for row in _read_csv(table)
               if row.get("actorid")}
    metadata = {os.path.dirname(table): {entry.get("file", "").replace("\\", "/").removeprefix("./"): entry
                                         for entry in _read_csv(table)}
                for table in tables[CUSTOM_METADATA]}
    rows, unparsed = [], []
    for path, size in sorted(audio):
        row = parse_name(Path(path))
        if row is None:
            unparsed.append(path)
            continue
        row.update(path=path, size_bytes=size)
        if row["corpus"] == "cremad":
            row["gender"] = genders.get(row["speaker"])
        elif row["corpus"] not in CORPUS_NAMES:
            _apply_metadata(row, metadata.get(os.path.dirname(os.path.dirname(path)), {}))
        rows.append(row | {"path": printable(path), "speaker": printable(row["speaker"])})
    return _Scan(root, rows, [printable(path) for path in unparsed])


def _misnamed(path: str) -> bool:
    """Whether a scanned path stands for a file whose name is not UTF-8: no file has the printable name.

    Pages, tables (pandas' and pyarrow's strings) and JSON take only UTF-8, so such a file is left out and
    the health check asks for it to be renamed.
    """
    return "\ufffd" in path and not os.path.lexists(path)


def _apply_metadata(row: dict, table: dict[str, dict[str, str]]) -> None:
    """Speaker (and gender) of a custom clip from metadata.csv, which lists `anna_01.wav` or `Happy/anna_01.wav`."""
    path = Path(row["path"])
    entry = table.get(f"{path.parent.name}/{path.name}") or table.get(path.name)
    if entry:
        if entry.get("speaker"):
            row["speaker"] = f"{row['corpus']}_{entry['speaker']}"
        row["gender"] = _GENDERS.get((entry.get("gender") or entry.get("sex") or "").lower())


def _how_to_unpack(root: Path) -> str:
    return (f"Unpack a corpus there, e.g. RAVDESS as {root / 'ravdess/Actor_01/03-01-01-01-01-01-01.wav'} "
            f"and TESS as {root / 'tess/OAF_angry/OAF_back_angry.wav'} (any folder depth works; CREMA-D, "
            "SAVEE and folders named after emotions are recognised too), or point --data-dir or the "
            f"{config.DATA_DIR_ENV} environment variable to the folder that holds them.")


def _select(scan: _Scan, corpora: Sequence[str] | None) -> list[dict]:
    """The scan's rows of the named corpora (all when None); unknown names are an error."""
    found = sorted({row["corpus"] for row in scan.rows})
    if not found:
        raise DatasetError(f"No corpus found in {scan.root} ({len(scan.unparsed)} audio files, none named "
                           f"like a known corpus). {_how_to_unpack(scan.root)}")
    if corpora is None:
        return scan.rows
    wanted = {name.strip().lower() for name in ([corpora] if isinstance(corpora, str) else corpora)}
    unknown = sorted(wanted - set(found))
    if unknown:
        raise DatasetError(f"No corpus named {', '.join(unknown)} in {scan.root}; "
                           f"found: {', '.join(found)}.")
    return [row for row in scan.rows if row["corpus"] in wanted]


def _read_header(path: str, size: int) -> tuple[dict | None, str | None]:
    """(sample rate, channels, duration, format, encoding) from the header without decoding, or why not."""
    if size == 0:
        return None, "empty file (0 bytes)"
    if _misnamed(path):
        return None, ("its name is not valid UTF-8 (shown with \ufffd), as from an older system's drive; "
                      "rename it to use it")
    try:
        with sf.SoundFile(path) as audio:
            frames, rate, channels = audio.frames, audio.samplerate, audio.channels
            file_format, encoding = audio.format.lower(), audio.subtype
    except (RuntimeError, OSError, ValueError) as error:
        return _read_header_av(path, getattr(error, "error_string", str(error)))
    if frames <= 0 or rate <= 0:
        return None, "no samples"
    return {"duration": math.nan if frames == UNKNOWN_FRAMES else frames / rate, "sample_rate": rate,
            "channels": channels,
            "format": file_format, "encoding": encoding}, None


def _read_header_av(path: str, soundfile_error: str) -> tuple[dict | None, str | None]:
    """The same facts from FFmpeg's container info, for compressed formats libsndfile does not read."""
    import av

    try:
        with av.open(path) as container:
            if not container.streams.audio:
                return None, "no audio stream"
            stream = container.streams.audio[0]
            if stream.duration is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / av.time_base
            else:
                duration = math.nan
            names = container.format.name.split(",")  # e.g. "mov,mp4,m4a,3gp,3g2,mj2"
            suffix = os.path.splitext(path)[1].lower().lstrip(".")
            file_format = suffix if suffix in names else names[0]
            info = {"duration": duration, "sample_rate": stream.sample_rate, "channels": stream.channels,
                    "format": file_format, "encoding": stream.codec_context.name}
    except (av.FFmpegError, OSError, ValueError, IndexError):
        return None, f"not readable as audio ({soundfile_error.rstrip('.')})"
    if not info["sample_rate"] or duration == 0:
        return None, "no samples"
    return info, None


def _frame(rows: list[dict], columns: Sequence[str]) -> pd.DataFrame:
    """Rows as a catalog, sorted by corpus, speaker and path so every run gives the same order."""
    frame = pd.DataFrame(rows, columns=list(columns))
    return frame.sort_values(["corpus", "speaker", "path"], kind="stable").reset_index(drop=True)


def build_catalog(data_dir: str | os.PathLike | None = None, corpora: Sequence[str] | None = None, *,
                  with_audio_info: bool = True) -> pd.DataFrame:
    """One row per usable clip of the corpora under the data root (see CATALOG_COLUMNS).

    Reads headers only. Unreadable and empty files, and files whose names are not UTF-8, are left out
    (check_health says which and why); with `with_audio_info=False` nothing is opened and only
    NAME_COLUMNS are returned. Missing gender, intensity, statement or vocal channel, and the duration
    of a file that does not record its length, are missing values (NaN).
    """
    scan = _scan(config.data_root(data_dir).resolve())
    rows = [row for row in _select(scan, corpora) if row["size_bytes"] > 0 and not _misnamed(row["path"])]
    if not with_audio_info:
        return _frame(rows, NAME_COLUMNS)
    usable = []
    for row in rows:  # serial on purpose: a thread pool measured slower for these sub-millisecond reads
        info, _ = _read_header(row["path"], row["size_bytes"])
        if info:
            usable.append(row | info)
    if not usable:
        raise DatasetError(f"None of the {len(rows)} clips found in {scan.root} can be read as audio; "
                           "the data health check lists each file and why.")
    return _frame(usable, CATALOG_COLUMNS)


FILTERS: tuple[str, ...] = ("corpus", "label", "speaker", "gender", "intensity", "statement")


def select(catalog: pd.DataFrame, **criteria: Sequence) -> pd.DataFrame:
    """Rows whose columns take one of the given values, e.g. select(c, label=["sad"], gender=["female"]);
    an empty or missing criterion keeps every row."""
    unknown = set(criteria) - set(catalog.columns)
    if unknown:
        raise OptionError(f"cannot filter on {', '.join(sorted(unknown))}: no such column")
    keep = np.ones(len(catalog), dtype=bool)
    for column, values in criteria.items():
        if values:
            keep &= catalog[column].isin(list(values)).to_numpy()
    return catalog[keep]


def list_corpora(data_dir: str | os.PathLike | None = None) -> dict[str, int]:
    """Corpus name -> number of non-empty clips, from file names alone (no file is opened)."""
    scan = _scan(config.data_root(data_dir).resolve())
    counts = Counter(row["corpus"] for row in _select(scan, None) if row["size_bytes"] > 0)
    return dict(sorted(counts.items()))


@dataclass
class Finding:
    """One problem in the data: a kind from FINDING_KINDS, the files concerned, and what is wrong."""

    kind: str
    paths: list[str]
    detail: str
    corpus: str | None = None


@dataclass
class HealthReport:
    """What check_health found: usable clips per corpus and every finding, ordered by kind and path."""

    root: str
    counts: dict[str, int]
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def of_kind(self, kind: str) -> list[Finding]:
        return [finding for finding in self.findings if finding.kind == kind]

    def to_dict(self) -> dict:
        return {"root": self.root, "counts": self.counts, "ok": self.ok,
                "findings": [asdict(finding) for finding in self.findings]}

    def summary(self) -> str:
        """Readable lines: the corpora found, then each kind of finding with its files relative to the root."""
        corpora = ", ".join(f"{name} {count} clips" for name, count in self.counts.items()) or "no usable clips"
        lines = [f"Data in {self.root}: {corpora}.",
                 "No problems found." if self.ok else f"{len(self.findings)} findings:"]
        for kind, description in FINDING_KINDS.items():
            findings = self.of_kind(kind)
            if findings:
                lines.append(f"- {description}: {len(findings)}")
                lines += [f"    {', '.join(self._relative(path) for path in finding.paths)}: {finding.detail}"
                          for finding in findings]
        return "\n".join(lines)

    def _relative(self, path: str) -> str:
        return os.path.relpath(path, self.root) if path.startswith(self.root + os.sep) else path


def check_health(data_dir: str | os.PathLike | None = None,
                 corpora: Sequence[str] | None = None) -> HealthReport:
    """Look for unreadable files, silent or undecodable clips, odd names, mislabelled formats, duplicates,
    stereo and odd sample rates.

    Never raises for bad data: a missing root or unknown corpus is itself a finding.
    """
    root = config.data_root(data_dir).resolve()
    try:
        scan = _scan(root)
        rows = _select(scan, corpora)
    except DatasetError as error:
        return HealthReport(str(root), {}, [Finding("no_data", [str(root)], str(error))])
    selected = {row["corpus"] for row in rows}
    findings = [finding for finding in _unparsed_findings(scan) if corpora is None or finding.corpus in selected]
    usable = []
    for row in rows:
        info, problem = _read_header(row["path"], row["size_bytes"])
        if info:
            usable.append(row | info)
        else:
            findings.append(Finding("unreadable", [row["path"]], problem, row["corpus"]))
        if row.get("note"):
            findings.append(Finding("irregular_name", [row["path"]], row["note"], row["corpus"]))
    findings += _header_findings(usable) + _signal_findings(usable) + _duplicate_findings(usable)
    order = list(FINDING_KINDS)
    findings.sort(key=lambda finding: (order.index(finding.kind), finding.paths))
    counts = Counter(row["corpus"] for row in usable)
    return HealthReport(str(root), dict(sorted(counts.items())), findings)


def _unparsed_findings(scan: _Scan) -> list[Finding]:
    """Audio files no parser accepts, each attributed to the corpus whose folder holds it, if any."""
    folders = defaultdict(set)
    for row in scan.rows:
        folders[row["corpus"]].add(os.path.dirname(row["path"]))
    homes = {corpus: os.path.commonpath(sorted(dirs)) for corpus, dirs in folders.items()}
    findings = []
    for path in scan.unparsed:
        owners = [corpus for corpus, home in sorted(homes.items()) if path.startswith(home + os.sep)]
        owner = max(owners, key=lambda corpus: len(homes[corpus]), default=None)
        where = f"in the {owner} folder" if owner else "outside every corpus folder"
        findings.append(Finding("unparsed_name", [path],
                                f"name follows no corpus's scheme ({where}); the file is ignored", owner))
    return findings


def _header_findings(rows: list[dict]) -> list[Finding]:
    """Format/extension mismatches, stereo files, and sample rates other than their corpus's usual one."""
    findings = []
    rates = defaultdict(Counter)
    for row in rows:
        rates[row["corpus"]][row["sample_rate"]] += 1
    usual_rate = {corpus: counter.most_common(1)[0][0] for corpus, counter in rates.items()}
    for row in rows:
        path, corpus = row["path"], row["corpus"]
        extension = os.path.splitext(path)[1].lower()
        if row["format"] not in _EXPECTED_FORMATS.get(extension, {row["format"]}):
            findings.append(Finding("format_mismatch", [path],
                                    f"{row['format'].upper()} data in a {extension} file: libsndfile reads it, "
                                    "tools that trust the extension do not; convert or rename it", corpus))
        if row["channels"] > 1:
            findings.append(Finding("stereo", [path], f"{row['channels']} channels; most clips are mono",
                                    corpus))
        if row["sample_rate"] != usual_rate[corpus]:
            findings.append(Finding("unusual_sample_rate", [path],
                                    f"{row['sample_rate']} Hz where {corpus} clips are {usual_rate[corpus]} Hz",
                                    corpus))
    return findings


def _signal_findings(rows: list[dict]) -> list[Finding]:
    """Clips whose header reads but whose samples hold no sound or do not decode: each would be skipped by
    evaluation and training (load_audio refuses it), or, for a constant offset, learnt from as if it were
    speech. Decoded in threads at each file's own rate: the decoders release the GIL."""
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        problems = list(pool.map(_signal_problem, rows))
    return [Finding(kind, [row["path"]], detail, row["corpus"])
            for row, (kind, detail) in zip(rows, problems) if kind]


def _signal_problem(row: dict) -> tuple[str | None, str]:
    """(finding kind, detail) of a clip's samples, or (None, "") when they are usable."""
    from .audio import load_audio
    from .errors import AudioError, SilentAudioError

    name = os.path.basename(row["path"])
    try:  # digital silence and a constant offset are both refused as silent
        load_audio(row["path"], sr=row["sample_rate"], normalize=False, name=name)
    except AudioError as error:  # the first sentence says what is wrong; the rest advises a recording user
        what = str(error).removeprefix(f"{name}: ").split(". ")[0].rstrip(".")
        kind = "silent" if isinstance(error, SilentAudioError) else "unusable"
        return kind, f"{what}; evaluation and training skip it: fix or remove it"
    return None, ""


def _sha256(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None


def _duplicate_findings(rows: list[dict]) -> list[Finding]:
    """Groups of byte-identical files (hashed in threads: hashlib releases the GIL). Copies under different
    labels are all to go: the label of each is in doubt, where same-label copies only need one kept."""
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        digests = list(pool.map(_sha256, [row["path"] for row in rows]))
    groups = defaultdict(list)
    for row, digest in zip(rows, digests):
        if digest:
            groups[digest].append(row)
    findings = []
    for digest, group in groups.items():
        if len(group) > 1:
            corpora = {row["corpus"] for row in group}
            labels = [label for label in config.LABELS if label in {row["label"] for row in group}]
            advice = (f" under different labels ({', '.join(labels)}): which one is right is unknown, so remove "
                      "every copy" if len(labels) > 1 else "; keep one copy")
            findings.append(Finding("duplicate", sorted(row["path"] for row in group),
                                    f"identical content (sha256 {digest[:12]}){advice}",
                                    corpora.pop() if len(corpora) == 1 else None))
    return findings
