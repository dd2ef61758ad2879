"""Model names a user types, and model bundles whose metadata.json is malformed: a name never reaches outside its
folder, saving never deletes what is not a model, and a broken bundle is listed as broken, not a crash."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ser_core import cli, config, training
from ser_core.bundles import list_models, load_bundle, save_bundle
from ser_core.corpora import build_catalog
from ser_core.errors import ModelError, OptionError
from ser_core.inference import Predictor
from ser_core.training import TrainConfig, save_run, train
from tests.clips import write_clip
from tests.conftest import PROJECT_ROOT
from tests.corpus_trees import write_ravdess_tree
from tests.train_page import train_svm_on_page

SVM = TrainConfig(model="svm", features="librosa180", folds=2)
BAD_NAMES = ["../victim", "..", ".", ".hidden", "", "a/b", "<the victim, absolute>", "with space", "x" * 101, "name\n"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_ravdess_tree(root / "ravdess", actors=(1, 2, 3, 4))
    return root


@pytest.fixture(scope="module")
def run(corpus):
    return train(build_catalog(corpus), SVM, n_jobs=1)


def victim() -> Path:
    """A folder of someone's work beside the user models folder, the target of `../victim`."""
    folder = config.user_models_dir().parent / "victim"
    folder.mkdir(parents=True)
    (folder / "thesis.txt").write_text("years of work")
    return folder


def test_the_train_command_refuses_a_name_that_leaves_the_models_folder_before_training(corpus, tmp_path, capsys):
    folder = victim()
    code = cli.main(["train", "--name", "../victim", "--model", "svm", "--features", "mfcc_prosody", "--folds", "2",
                     "--data-dir", str(corpus), "--jobs", "1"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_BAD_INPUT and "'../victim' is not a model name" in err and "fold" not in err
    assert (folder / "thesis.txt").read_text() == "years of work"


@pytest.mark.parametrize("name", BAD_NAMES)
def test_save_run_refuses_names_that_are_not_plain(run, tmp_path, name):
    folder = victim()
    name = str(folder) if name == "<the victim, absolute>" else name
    with pytest.raises(OptionError, match="not a model name"):
        save_run(run, name)
    with pytest.raises(OptionError, match="not a model name"):
        save_run(run, name, tmp_path / "out")
    assert (folder / "thesis.txt").read_text() == "years of work"
    assert not config.user_models_dir().exists() or not list(config.user_models_dir().iterdir())


def test_plain_names_are_accepted(run):
    for name in ("my-svm_2.v1", "A", "x" * 100):
        assert save_run(run, name).parent == config.user_models_dir()
    assert sorted(load_bundle("my-svm_2.v1").labels) == sorted(run.labels)


def test_saving_never_replaces_a_folder_or_file_that_is_not_a_model(run, tmp_path):
    models = config.user_models_dir()
    notes = models / "notes"
    notes.mkdir(parents=True)
    (notes / "todo.txt").write_text("keep me")
    foreign = models / "foreign"
    foreign.mkdir()
    (foreign / "metadata.json").write_text('{"format": "another-app", "keep": true}')
    (models / "plain-file").write_text("keep me too")
    outside = save_run(run, "outside", tmp_path)  # a real bundle, outside the models folder
    (models / "linked").symlink_to(outside, target_is_directory=True)
    for name in ("notes", "foreign", "plain-file", "linked"):
        with pytest.raises(ModelError, match="is not a SER Studio model"):
            training.model_folder(name)  # what the train command checks before training
        with pytest.raises(ModelError, match="is not a SER Studio model"):
            save_run(run, name)
    with pytest.raises(ModelError, match="is not a SER Studio model"):
        save_bundle(notes, run.model, {"labels": run.labels})
    assert (notes / "todo.txt").read_text() == "keep me" and sorted(p.name for p in notes.iterdir()) == ["todo.txt"]
    assert json.loads((foreign / "metadata.json").read_text())["keep"] is True
    assert (models / "plain-file").read_text() == "keep me too"
    assert load_bundle(outside).model is not None and (models / "linked").is_symlink()
    assert [p.name for p in models.iterdir() if p.name.startswith(".")] == [".lock"]  # no staging left behind
    save_run(run, "mine")
    assert save_run(run, "mine") == models / "mine"  # the user's own model may be replaced


def test_the_train_page_save_box_refuses_a_name_that_leaves_the_models_folder(monkeypatch, corpus):
    folder = victim()
    at = train_svm_on_page(monkeypatch, corpus)
    at.text_input(key="save_name").set_value("../victim")
    at.button(key="FormSubmitter:save-Save model").click().run()
    assert not at.exception and not at.success
    assert "'../victim' is not a model name" in at.error[0].value
    assert (folder / "thesis.txt").read_text() == "years of work"


# ----- malformed bundles -----

def deeply_nested(depth: int = 100_000) -> str:
    return "[" * depth + "]" * depth


def _malformed(good: dict) -> dict[str, str]:
    """Folder name -> metadata.json text of a bundle broken in one way each."""
    without = lambda key: json.dumps({k: v for k, v in good.items() if k != key})  # noqa: E731
    evaluation = json.loads(json.dumps(good["evaluation"]))
    evaluation["pooled"]["accuracy"] = "high"
    return {
        "a-list": json.dumps([good]),
        "no-features": without("features"),
        "no-labels": without("labels"),
        "deep": json.dumps({**good, "labels": []})[:-1] + ', "deep": ' + deeply_nested() + "}",
        "deep-labels": json.dumps({**good, "labels": json.loads(deeply_nested(500))}),
        "outside-file": json.dumps({**good, "model_file": "../good/model.skops"}),
        "odd-evaluation": json.dumps({**good, "evaluation": evaluation}),
        "odd-kind": json.dumps({**good, "kind": "pickle"}),
        "odd-name": json.dumps({**good, "name": "../../elsewhere"}),
        "odd-normalisation": json.dumps({**good, "normalisation": ["typical_speaker_std"]}),
    }


@pytest.fixture
def models_with_broken_ones() -> tuple[Path, list[str]]:
    """The user models folder: a good copy of a shipped model, and one malformed bundle per way of breaking."""
    models = config.user_models_dir()
    good = json.loads((config.SHIPPED_MODELS_DIR / "egemaps-svm" / "metadata.json").read_text())
    good["name"] = "good"
    shutil.copytree(config.SHIPPED_MODELS_DIR / "egemaps-svm", models / "good")
    (models / "good" / "metadata.json").write_text(json.dumps(good))
    broken = _malformed(good)
    for name, text in broken.items():
        shutil.copytree(models / "good", models / name)
        (models / name / "metadata.json").write_text(text)
    return models, sorted(broken)


def test_a_malformed_bundle_is_listed_as_broken_and_the_others_stay_usable(models_with_broken_ones, tmp_path,
                                                                           capsys):
    models, broken = models_with_broken_ones
    listed = {m["name"]: m for m in list_models() if m["source"] == "user"}
    assert sorted(listed) == sorted(["good", *broken])
    assert listed["good"]["broken"] is None and listed["good"]["features"] == "egemaps"
    for name in broken:
        assert listed[name]["broken"] and listed[name]["summary"].startswith("broken: "), name
        with pytest.raises(ModelError):
            load_bundle(name)
        with pytest.raises(ModelError):
            load_bundle(models / name)
    assert "features is missing" in listed["no-features"]["broken"]
    assert "labels is missing" in listed["no-labels"]["broken"]
    assert "is damaged" in listed["deep"]["broken"]
    assert "labels[0]" in listed["deep-labels"]["broken"]
    assert "model_file" in listed["outside-file"]["broken"]
    assert "evaluation.pooled.accuracy" in listed["odd-evaluation"]["broken"]
    clip = write_clip(tmp_path / "clip.wav", duration=1.0)
    good = json.loads((models / "good" / "metadata.json").read_text())
    assert set(Predictor.load("good").predict(clip).probabilities) == set(good["labels"])
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    assert "good\tuser\tegemaps + svm" in out and "no-labels\tuser\tbroken: " in out
    assert cli.main(["models", "--json"]) == 0
    records = {r["name"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert "labels is missing" in records["no-labels"]["broken"] and records["good"]["broken"] is None


def test_a_model_name_never_reaches_outside_the_models_folders(models_with_broken_ones):
    models, _ = models_with_broken_ones
    shutil.copytree(models / "good", models.parent / "beside")
    (models.parent / "beside" / "metadata.json").write_text(
        (models / "good" / "metadata.json").read_text().replace('"good"', '"beside"'))
    with pytest.raises(ModelError, match="No model called"):
        load_bundle("../beside")  # not a folder from here, and not a name inside a models folder


# The Live page shares the Classify page's model picker; its WebRTC widget does not run under AppTest.
@pytest.mark.parametrize("script", ["streamlit_app.py", "pages/3_Classify.py", "pages/2_Train.py"])
def test_pages_show_a_short_message_for_a_broken_model(monkeypatch, tmp_path, models_with_broken_ones, script):
    _, broken = models_with_broken_ones
    monkeypatch.setenv("SER_DATA_DIR", str(tmp_path / "no-data"))
    at = AppTest.from_file(str(PROJECT_ROOT / script), default_timeout=120).run()
    assert not at.exception, at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert all(f"{name} (user) cannot be used" in warnings for name in broken), warnings
    if script != "streamlit_app.py":
        box = at.selectbox(key="card") if script == "pages/2_Train.py" else at.selectbox[0]
        assert "good (user)" in box.options and not any(name in " ".join(box.options) for name in broken)
        box.select_index(box.options.index("good (user)")).run()
        assert not at.exception, at.exception
