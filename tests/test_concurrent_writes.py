"""Writes that two processes make at once, a full disk and a killed writer: nothing lost, nothing left behind."""
from __future__ import annotations

import errno
import hashlib
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
import types

import pandas as pd
import pytest

from ser_core import config, recordings
from ser_core.errors import DatasetError
from ser_core.files import write_atomically
from tests.clips import voice
from tests.conftest import PROJECT_ROOT
from tests.test_recordings import CORPUS, audio_files, metadata

PROCESSES, CLIPS_EACH = 4, 5


def add_clips(data_dir: str, worker: int, barrier) -> None:
    """One process of a class: waits for the others, then adds its clips of one speaker as fast as it can."""
    barrier.wait()
    for n in range(CLIPS_EACH):
        recordings.add_clip(CORPUS, voice(0.6, f0=100 + 10 * n, seed=worker), sr=16_000, speaker="ana",
                            label=("happy", "sad")[n % 2], gender="female", data_dir=data_dir)


def run_at_once(target, folder) -> list[int | None]:
    """target(folder, worker, barrier) in PROCESSES separate interpreters (as two app servers or the CLI beside
    the app are), released together; their exit codes."""
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(PROCESSES)
    workers = [spawn.Process(target=target, args=(str(folder), worker, barrier)) for worker in range(PROCESSES)]
    # A spawned child runs __main__'s file first; after an AppTest that is a page script, which must not run.
    main, sys.modules["__main__"] = sys.modules["__main__"], types.ModuleType("__main__")
    try:
        for worker in workers:
            worker.start()
    finally:
        sys.modules["__main__"] = main
    for worker in workers:
        worker.join(120)
    return [worker.exitcode for worker in workers]


def test_processes_adding_clips_to_one_speaker_keep_every_clip(tmp_path):
    assert run_at_once(add_clips, tmp_path) == [0] * PROCESSES
    clips = sorted(path for path in (tmp_path / CORPUS).rglob("*.wav"))
    assert len(clips) == PROCESSES * CLIPS_EACH
    assert sorted(path.stem for path in clips) == [f"ana_{n:03d}" for n in range(1, PROCESSES * CLIPS_EACH + 1)]
    assert len({hashlib.sha256(path.read_bytes()).hexdigest() for path in clips}) == len(clips)  # none overwritten
    rows = metadata(tmp_path)
    assert sorted(rows["file"]) == sorted(f"{path.parent.name}/{path.name}" for path in clips)
    assert set(rows["speaker"]) == {"ana"} and set(rows["gender"]) == {"female"}
    assert not [name for name in audio_files(tmp_path) if name.endswith(".tmp")]


@pytest.fixture
def root(tmp_path):
    """A class corpus: two speakers, two clips each, genders given."""
    for seed, (speaker, gender) in enumerate({"ana": "female", "ben": "male"}.items()):
        for label in ("happy", "sad"):
            recordings.add_clip(CORPUS, voice(0.6, f0=120 + 30 * seed, seed=seed), sr=16_000, speaker=speaker,
                                label=label, gender=gender, data_dir=tmp_path)
    return tmp_path


def full_disk_for(monkeypatch, name_part: str) -> None:
    """Temporary files whose name holds `name_part` are written onto /dev/full: the kernel's own ENOSPC."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    real = tempfile.mkstemp

    def mkstemp(*args, **kwargs):
        handle, path = real(*args, **kwargs)
        if name_part in os.path.basename(path):
            os.unlink(path)
            os.symlink("/dev/full", path)
        return handle, path

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def test_a_full_disk_while_saving_a_clip_says_so_and_saves_nothing(root, monkeypatch):
    before_files, before_table = audio_files(root), metadata(root)
    full_disk_for(monkeypatch, ".wav.")
    with pytest.raises(DatasetError, match="the disk is full.*the clip was not saved"):
        recordings.add_clip(CORPUS, voice(0.6), sr=16_000, speaker="cleo", label="sad", data_dir=root)
    assert audio_files(root) == before_files
    pd.testing.assert_frame_equal(metadata(root), before_table)


def test_a_full_disk_while_listing_a_new_clip_takes_the_clip_back(root, monkeypatch):
    before_files, before_table = audio_files(root), metadata(root)
    full_disk_for(monkeypatch, "metadata.csv")
    with pytest.raises(DatasetError, match="the disk is full.*the clip was not saved"):
        recordings.add_clip(CORPUS, voice(0.6), sr=16_000, speaker="cleo", label="angry", gender="female",
                            data_dir=root)
    assert audio_files(root) == before_files  # no clip without its row (its gender would be lost)
    pd.testing.assert_frame_equal(metadata(root), before_table)


def replace_fails_for(monkeypatch, name_ends: str) -> None:
    """os.replace fails with ENOSPC for targets whose name ends so (a directory entry that cannot grow)."""
    real = os.replace

    def replace(source, target):
        if str(target).endswith(name_ends):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(source, target)

    monkeypatch.setattr(os, "replace", replace)


@pytest.mark.parametrize("fail", ["writing the table", "putting the table in place"])
def test_renaming_a_speaker_on_a_full_disk_changes_nothing_and_says_so(root, monkeypatch, fail):
    before_files, before_table = audio_files(root), metadata(root)
    if fail == "writing the table":
        full_disk_for(monkeypatch, "metadata.csv")
    else:
        replace_fails_for(monkeypatch, "metadata.csv")
    with pytest.raises(DatasetError, match="the disk is full.*nothing was changed"):
        recordings.rename_speaker(CORPUS, "ana", "anna", data_dir=root)
    assert audio_files(root) == before_files
    pd.testing.assert_frame_equal(metadata(root), before_table)
    monkeypatch.undo()
    assert recordings.rename_speaker(CORPUS, "ana", "anna", data_dir=root) == 2  # once there is space
    clips = recordings.list_clips(CORPUS, data_dir=root).set_index("file")
    assert clips.loc[["happy/anna_001.wav", "sad/anna_002.wav"], "gender"].tolist() == ["female", "female"]


def test_a_change_that_can_be_neither_finished_nor_undone_says_so_and_loses_no_clip(root, monkeypatch):
    real = os.replace

    def replace(source, target):
        if str(target).endswith(("metadata.csv", "happy/ana_001.wav")):  # the table, and moving a clip back
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real(source, target)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(DatasetError, match="nor undo it.*none is lost"):
        recordings.rename_speaker(CORPUS, "ana", "anna", data_dir=root)
    monkeypatch.undo()
    clips = recordings.list_clips(CORPUS, data_dir=root)
    assert sorted(clips["file"]) == ["happy/anna_001.wav", "happy/ben_001.wav", "sad/ana_002.wav", "sad/ben_002.wav"]


@pytest.mark.parametrize("change", ["relabel", "delete"])
def test_a_relabel_or_delete_on_a_full_disk_changes_nothing_and_says_so(root, monkeypatch, change):
    before_files, before_table = audio_files(root), metadata(root)
    full_disk_for(monkeypatch, "metadata.csv")
    with pytest.raises(DatasetError, match="the disk is full.*nothing was changed"):
        if change == "relabel":
            recordings.relabel_clip(CORPUS, "happy/ben_001.wav", label="calm", data_dir=root)
        else:
            recordings.delete_clip(CORPUS, "happy/ben_001.wav", data_dir=root)
    assert audio_files(root) == before_files
    pd.testing.assert_frame_equal(metadata(root), before_table)


def age(path, seconds: float) -> None:
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))


def test_a_killed_writer_s_temporary_file_is_removed_by_a_later_write_once_stale(tmp_path):
    target = tmp_path / "cache" / "entry.npy"
    writer = ("import sys, time\nfrom ser_core.files import write_atomically\n"
              "def write(path):\n    open(path, 'wb').write(b'half')\n    print('writing', flush=True)\n"
              "    time.sleep(60)\n"
              f"write_atomically({str(target)!r}, write)\n")
    process = subprocess.Popen([sys.executable, "-c", writer], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline() == "writing\n"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stdout.close()
    [left] = [path for path in target.parent.iterdir()]
    assert left.name.startswith(".entry.npy.") and left.name.endswith(".tmp")

    write_atomically(target.parent / "other.npy", lambda path: open(path, "wb").write(b"x"))
    assert left.exists()  # young: it may be a live writer in another process
    age(left, config.STALE_TEMPORARY_AGE + 60)
    write_atomically(target.parent / "other.npy", lambda path: open(path, "wb").write(b"y"))
    assert not left.exists()
    assert sorted(path.name for path in target.parent.iterdir()) == ["other.npy"]


def test_stale_cleaning_touches_only_write_atomically_s_own_temporary_files(tmp_path):
    mine = [".clip.wav.k2j4_x9q.tmp", ".metadata.csv.abcdefgh.tmp"]
    others = [".notes.tmp", "clip.wav.abcdefgh.tmp", ".clip.wav.abc.tmp", ".clip.wav.abcdefgh.tmp.bak",
              ".clip.wav.ABCDEFGH.tmp", "keep.wav"]
    for name in mine + others:
        (tmp_path / name).write_bytes(b"x")
        age(tmp_path / name, config.STALE_TEMPORARY_AGE + 60)
    (tmp_path / ".folder.abcdefgh.tmp").mkdir()
    age(tmp_path / ".folder.abcdefgh.tmp", config.STALE_TEMPORARY_AGE + 60)
    write_atomically(tmp_path / "new.txt", lambda path: open(path, "w").write("new"))
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(others + [".folder.abcdefgh.tmp", "new.txt"])


def test_a_new_file_never_replaces_one_put_there_meanwhile(tmp_path):
    target = tmp_path / "ana_001.wav"

    def write(path: str) -> None:
        target.write_bytes(b"another process's clip")  # appears while this one is being written
        open(path, "wb").write(b"this clip")

    with pytest.raises(FileExistsError):
        write_atomically(target, write, overwrite=False)
    assert target.read_bytes() == b"another process's clip"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ana_001.wav"]


def save_model(models_dir: str, worker: int, barrier) -> None:
    """One process saving the same model name again and again, as two servers' Train pages or the CLI might."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from ser_core.bundles import save_bundle

    rng = np.random.default_rng(worker)
    model = LogisticRegression().fit(rng.random((20, 3)), ["happy", "sad"] * 10)
    barrier.wait()
    for _ in range(10):
        save_bundle(os.path.join(models_dir, "shared-name"), model,
                    {"labels": ["happy", "sad"], "features": {"name": "egemaps"}, "worker": worker})


def test_processes_saving_one_model_name_take_turns(tmp_path):
    # Without the lock, now and then (a race: one run in a few here) a save found no folder and another's landed
    # first ("Directory not empty"), or moved away the folder another was replacing, leaving hidden leftovers.
    assert run_at_once(save_model, tmp_path) == [0] * PROCESSES
    assert [name for name in os.listdir(tmp_path) if name != ".lock"] == ["shared-name"]
    assert sorted(os.listdir(tmp_path / "shared-name")) == ["metadata.json", "model.skops"]


def test_a_killed_save_s_staging_folders_are_removed_by_a_later_save_once_stale(tmp_path):
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from ser_core.bundles import save_bundle

    stale, young = tmp_path / ".mine.saving.k2j4_x9q", tmp_path / ".mine.replaced.abcdefgh"
    others = [tmp_path / ".notes.abcdefgh", tmp_path / ".mine.saving.abc"]  # not save_bundle's names
    for folder in (stale, young, *others):
        folder.mkdir()
        (folder / "model.skops").write_bytes(b"half a model")
    for folder in (stale, *others):
        age(folder, config.STALE_TEMPORARY_AGE + 60)
    model = LogisticRegression().fit(np.random.default_rng(0).random((20, 3)), ["happy", "sad"] * 10)
    save_bundle(tmp_path / "mine", model, {"labels": ["happy", "sad"], "features": {"name": "egemaps"}})
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [".lock", "mine", young.name] + [folder.name for folder in others])
