"""Train: choose data, features, a model and a protocol; watch it train; read honest results; save it."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from app_common import catalog_or_message, page_config, usable_models, waiting_message
from ser_core import config, glossary, jobs, plots, reports
from ser_core.augment import AUGMENTATIONS
from ser_core.bundles import PREDICTIONS_FILE, read_metadata
from ser_core.corpora import select
from ser_core.errors import SerError
from ser_core.evaluation import (ADAPTATION_DESCRIPTION, PROTOCOL_DESCRIPTIONS, SCORING_DESCRIPTIONS, SCORINGS,
                                 skipped_note)
from ser_core.features import PIPELINES
from ser_core.models import MODELS, OPTIMIZERS
from ser_core.training import BASELINES, BOUNDS, TrainConfig, TrainingJob, TrainingRun, run_progress, save_run

MODEL_CHOICES = BASELINES + tuple(MODELS)


def show_result(result: dict, key: str) -> None:
    """Figures of an EvaluationResult (as a dict): the protocol first, always."""
    pooled = result["pooled"]
    st.info(f"Protocol: **{result['protocol']}** ({result['description']}), {result['folds']} folds"
            + (f", adapted: {ADAPTATION_DESCRIPTION}" if result.get("adapted") else "")
            + (f", scored {result['scoring']}" if result.get("voice_norm") else "")
            + ("" if result.get("complete", True) else f", stopped after {len(result['per_fold'])} folds")
            + f" · {', '.join(result['corpora'])}: {result['n_clips']} clips, {result['n_speakers']} speakers")
    if result.get("skipped"):
        st.warning(skipped_note(result["skipped"], limit=3))
    a, b, c = st.columns(3)
    a.metric("Accuracy", f"{pooled['accuracy']:.1%}", help=glossary.TERMS["accuracy"])
    b.metric("UAR", f"{pooled['uar']:.1%}", help=glossary.TERMS["UAR"])
    c.metric("Macro F1", f"{pooled['macro_f1']:.1%}", help=glossary.TERMS["macro F1"])
    st.caption(f"{glossary.chance(len(pooled['labels'])).capitalize()}: a model that guesses scores that.")
    left, right = st.columns(2)
    left.plotly_chart(plots.confusion(pooled), key=f"cm_{key}")
    right.plotly_chart(plots.confusion(pooled, normalize=True), key=f"cmn_{key}")
    per_class = pd.DataFrame(pooled["per_class"]).T
    left.dataframe(per_class.style.format({"precision": "{:.1%}", "recall": "{:.1%}", "f1": "{:.1%}",
                                           "support": "{:.0f}"}))
    folds = pd.DataFrame([{"fold": f["name"], "accuracy": f["accuracy"], "UAR": f["uar"],
                           "test speakers": ", ".join(f["test_speakers"])} for f in result["per_fold"]])
    right.dataframe(folds.style.format({"accuracy": "{:.1%}", "UAR": "{:.1%}"}), hide_index=True)


def report_downloads(source, name: str, key: str, predictions: bool) -> None:
    """Report (HTML), Figures (PNG, zip), Predictions (CSV) of a run or a saved model (`source`, as
    ser_core.reports takes it). Each file is made when its button is clicked, not on every rerun."""
    a, b, c = st.columns(3)
    a.download_button("Report (HTML)", lambda: reports.html_report(source), f"{name}-report.html", "text/html",
                      key=f"report_html_{key}", on_click="ignore", icon=":material/description:")
    b.download_button("Figures (PNG, zip)", lambda: reports.figures_png_zip(source), f"{name}-figures.zip",
                      "application/zip", key=f"report_png_{key}", on_click="ignore", icon=":material/image:")
    c.download_button("Predictions (CSV)", lambda: reports.predictions_csv(source), f"{name}-predictions.csv",
                      "text/csv", key=f"report_csv_{key}", on_click="ignore", icon=":material/table:",
                      disabled=not predictions,
                      help=None if predictions else "This model was saved without per-clip predictions.")


def number(column, label: str, name: str, value, **kwargs):
    """A number input over TrainConfig's range for the setting `name`, keyed `train_<name>`."""
    low, high = BOUNDS[name]
    return column.number_input(label, low, high, value, key=f"train_{name}", **kwargs)


# "Quick demo": a fast model on a few RAVDESS actors: 4.4 s on 2 cores with no features cached (360 clips).
QUICK_DEMO = {"model": "logreg", "features": "mfcc_prosody", "folds": 3}
QUICK_DEMO_SPEAKERS = [f"ravdess_{n:02d}" for n in range(1, 7)]


def train_form(clips: pd.DataFrame) -> tuple[TrainConfig, pd.DataFrame] | None:
    """The model, then a form of the settings that apply to it, filled with the last run's choices (hidden
    widgets forget theirs), so that the next run can change a single thing; on Train, the config and the clips
    chosen, or None after saying what is wrong."""
    corpus_names, speaker_names = sorted(clips["corpus"].unique()), sorted(clips["speaker"].unique())
    last = {**TrainConfig(model=MODEL_CHOICES[0]).to_dict(), "features": "", "corpora": corpus_names,
            "speakers": [], **st.session_state.get("train_form", {})}
    if "ravdess" in corpus_names and st.button(
            "Quick demo: train a fast model on 6 actors", key="quick_demo",
            help="Logistic regression on mfcc_prosody features, 6 RAVDESS actors, 3 folds by speaker: seconds"):
        chosen = select(clips, corpus=["ravdess"], speaker=QUICK_DEMO_SPEAKERS)
        # The form comes back with these settings, to change one thing and train again.
        st.session_state["train_form"] = {**last, **QUICK_DEMO, "corpora": ["ravdess"],
                                          "speakers": sorted(set(chosen["speaker"]))}
        return TrainConfig(**QUICK_DEMO), chosen
    # Outside the form, so that choosing a model redraws the form with only the settings that apply to it.
    model = st.selectbox("Model", MODEL_CHOICES, index=MODEL_CHOICES.index(last["model"]), key="train_model",
                         help="svm, logreg, ridge: scikit-learn, seconds on a CPU; the others: Keras neural "
                              "networks, minutes")
    keras = model not in BASELINES
    default_features = MODELS[model][1] if keras else config.DEFAULT_FEATURES
    feature_names, protocols = ["", *PIPELINES], list(PROTOCOL_DESCRIPTIONS)
    with st.form("train"):
        top_left, top_right = st.columns([2, 3])  # wide enough for whole names
        corpora = top_left.multiselect("Corpora", corpus_names, key="train_corpora",
                                       default=[c for c in last["corpora"] if c in corpus_names])
        speakers = top_right.multiselect("Only these speakers (empty: all)", speaker_names, key="train_speakers",
                                         default=[s for s in last["speakers"] if s in speaker_names])
        left, right = st.columns(2)
        choice = dict(
            model=model,
            features=left.selectbox("Features", feature_names, index=feature_names.index(last["features"]),
                                      format_func=lambda f: f or f"{default_features} (the model's default)",
                                      key="train_features"),
            protocol=left.radio("Protocol", protocols, index=protocols.index(last["protocol"]),
                                  captions=list(PROTOCOL_DESCRIPTIONS.values()), key="train_protocol"),
            folds=number(right, "Folds", "folds", last["folds"], help=glossary.TERMS["fold"]),
            augmentation=left.multiselect("Augmentation (training folds only)", AUGMENTATIONS,
                                          default=last["augmentation"], key="train_augmentation"),
            merge_calm=left.checkbox("Count calm as neutral", last["merge_calm"], key="train_merge_calm",
                                     help="Calm exists only in RAVDESS; on other corpora a model that keeps it "
                                          "recognises neutral less."),
        )
        normalisation = left.radio(
            "Normalisation", ("none", "per speaker", "by what it hears") if not keras else ("none", "per speaker"),
            index=1 if last["speaker_norm"] else 2 if last["voice_norm"] and not keras else 0,
            key="train_normalisation",
            help=f"Per speaker: {glossary.TERMS['per-speaker normalisation']} By what it hears: works on one clip "
                 "of a new voice and adapts as it hears the room and the voice (the default model does).")
        choice.update(speaker_norm=normalisation == "per speaker", voice_norm=normalisation == "by what it hears")
        if keras:
            choice.update(
                epochs=number(right, "Epochs", "epochs", last["epochs"]),
                batch_size=number(right, "Batch size", "batch_size", last["batch_size"]),
                learning_rate=number(right, "Learning rate", "learning_rate", last["learning_rate"],
                                     format="%.5f"),
                dropout=right.slider("Dropout", *BOUNDS["dropout"], last["dropout"], key="train_dropout"),
                optimizer=right.selectbox("Optimizer", OPTIMIZERS, index=OPTIMIZERS.index(last["optimizer"]),
                                          key="train_optimizer"),
                adapt=False)  # scikit-learn models only
        else:
            choice.update(
                adapt=right.checkbox("Adapt to the test speakers", last["adapt"], key="train_adapt",
                                     help="Self-trains each fold's model on its test clips, without their labels, "
                                          "as a model does once it has heard a speaker's whole session."),
                scoring=right.selectbox("Score test clips (normalised by what it hears)", SCORINGS,
                                        index=SCORINGS.index(last["scoring"]), key="train_scoring",
                                        help="; ".join(f"{name}: {text.format(clips=config.VOICE_CLIPS)}"
                                                       for name, text in SCORING_DESCRIPTIONS.items())),
                voice_clips=number(right, "Clips of each test voice heard first (voice scoring)", "voice_clips",
                                   last["voice_clips"]))
        if not st.form_submit_button("Train", type="primary"):
            return None
    remembered = {name: last[name] for name in TrainConfig().to_dict() if name in last}  # what is hidden now
    choice = {**remembered, **choice}
    st.session_state["train_form"] = {**choice, "corpora": corpora, "speakers": speakers}
    try:
        cfg = TrainConfig(**choice)
        chosen = select(clips, corpus=corpora, speaker=speakers)
        if chosen.empty:
            raise SerError("No clips match this choice of corpora and speakers.")
    except SerError as error:
        st.error(str(error))
        return None
    return cfg, chosen


@st.fragment(run_every=1.0)
def show_progress() -> None:
    """The running job, redrawn every second: its place in the queue, feature extraction, folds, curves, Stop."""
    job = st.session_state.get("job")
    if job is None:
        return
    if job.ahead and not job.done:
        st.info(waiting_message(job.ahead, "training"))
    events = list(job.events)
    if not job.done:
        share, text = run_progress(events)
        st.progress(min(1.0, share), text=text)
    folds_done = [e for e in events if e.kind == "fold"]
    if folds_done:
        st.caption(" · ".join(f"fold {e.fold + 1}/{e.folds}: {e.metrics['accuracy']:.1%}" for e in folds_done))
    if any(e.kind == "epoch" for e in events):
        left, right = st.columns(2)
        left.plotly_chart(plots.training_curves(events, "loss"), key="curve_loss")
        right.plotly_chart(plots.training_curves(events, "accuracy"), key="curve_accuracy")
    if not job.done:
        if st.button("Stop", key="stop"):
            job.stop()
            st.toast("Stopping after this batch; the best weights so far are kept.")
    elif st.session_state.get("shown_job") is not job:
        st.session_state["shown_job"] = job
        st.rerun()  # a full rerun draws the results and the form again


def save_box(run: TrainingRun) -> None:
    """Save the run as a model under a name the user types (refused if it leaves the models folder)."""
    with st.form("save"):
        name = st.text_input("Save as", value=f"my-{run.config.model}", key="save_name")
        if st.form_submit_button("Save model"):
            try:
                st.session_state["saved"] = str(save_run(run, name.strip()))
            except SerError as error:
                st.error(str(error))
    if st.session_state.get("saved"):
        st.success(f"Saved to {st.session_state['saved']}: it is now in the model lists.")


def show_run(run: TrainingRun) -> None:
    """A finished run: its figures, the save box, and its reports (named after the model once saved)."""
    if run.stopped:
        st.warning("Stopped: the figures cover the folds that finished.")
    if run.result is not None:
        show_result(run.result.to_dict(), "run")
    save_box(run)
    if run.result is not None:
        saved = st.session_state.get("saved")
        name = Path(saved).name if saved else f"{run.config.model}-{run.config.features}"
        report_downloads(reports.from_run(run, name=name), name, "run", run.result.predictions is not None)


def train_tab() -> None:
    """The form while no job runs, the running job's progress, then its result."""
    clips = catalog_or_message()
    job = st.session_state.get("job")
    if clips is not None and (job is None or job.done):
        chosen = train_form(clips)
        if chosen is not None:
            st.session_state["job"] = TrainingJob(chosen[1], chosen[0], queue=jobs.HEAVY)
            st.session_state.pop("saved", None)
            st.rerun()
    show_progress()
    job = st.session_state.get("job")
    if job is not None and job.done and job.error:
        st.error(job.error)
    elif job is not None and job.done and job.run is not None:
        show_run(job.run)


def saved_model(chosen: dict) -> None:
    """One saved model: its card, its evaluation and its reports."""
    card = Path(chosen["path"]) / "README.md"
    if card.is_file():
        with st.expander("Model card", expanded=False):
            st.markdown(card.read_text(errors="replace"))
    try:
        evaluation = read_metadata(chosen["path"])[1].get("evaluation")
    except SerError as error:  # damaged since it was listed
        st.warning(str(error))
        return
    if not evaluation:
        st.info("This model was saved without an evaluation.")
        return
    show_result(evaluation, "saved")
    report_downloads(chosen["path"], chosen["name"], "saved", (Path(chosen["path"]) / PREDICTIONS_FILE).is_file())


def saved_models_tab() -> None:
    """Every usable model side by side, then one of them in full."""
    models = usable_models()
    table = pd.DataFrame(models)
    if table.empty:
        st.info("No models yet.")
        return
    st.caption("Compare like with like: the same protocol and corpora.")
    st.dataframe(table[["name", "source", "model", "features", "corpora", "protocol", "folds", "accuracy",
                        "uar", "macro_f1", "chance", "created"]]
                 .style.format({"accuracy": "{:.1%}", "uar": "{:.1%}", "macro_f1": "{:.1%}", "chance": "{:.1%}"},
                               na_rep="-"),
                 hide_index=True)
    saved_model(st.selectbox("Model", models, format_func=lambda m: f"{m['name']} ({m['source']})", key="card"))


page_config("Train")
st.title("Train and evaluate")
train_panel, models_panel = st.tabs(["Train a model", "Saved models"])
with train_panel:
    train_tab()
with models_panel:
    saved_models_tab()
