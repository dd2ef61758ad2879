"""Train: choose data, features, a model and a protocol; watch it train; read honest results; save it."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from app_common import catalog_or_message, page_config, usable_models, waiting_message
from ser_core import jobs, plots
from ser_core.errors import SerError
from ser_core.evaluation import ADAPTATION_DESCRIPTION, PROTOCOL_DESCRIPTIONS, skipped_note

page_config("Train")
st.title("Train and evaluate")


def show_result(result: dict, key: str) -> None:
    """Figures of an EvaluationResult (as a dict): the protocol first, always."""
    pooled = result["pooled"]
    st.info(f"Protocol: **{result['protocol']}** ({result['description']}), {result['folds']} folds"
            + (f", adapted: {ADAPTATION_DESCRIPTION}" if result.get("adapted") else "")
            + ("" if result.get("complete", True) else f", stopped after {len(result['per_fold'])} folds")
            + f" · {', '.join(result['corpora'])}: {result['n_clips']} clips, {result['n_speakers']} speakers")
    if result.get("skipped"):
        st.warning(skipped_note(result["skipped"], limit=3))
    a, b, c = st.columns(3)
    a.metric("Accuracy", f"{pooled['accuracy']:.1%}")
    b.metric("UAR (mean recall)", f"{pooled['uar']:.1%}")
    c.metric("Macro F1", f"{pooled['macro_f1']:.1%}")
    left, right = st.columns(2)
    left.plotly_chart(plots.confusion(pooled), key=f"cm_{key}")
    right.plotly_chart(plots.confusion(pooled, normalise=True), key=f"cmn_{key}")
    per_class = pd.DataFrame(pooled["per_class"]).T
    left.dataframe(per_class.style.format({"precision": "{:.1%}", "recall": "{:.1%}", "f1": "{:.1%}",
                                           "support": "{:.0f}"}))
    folds = pd.DataFrame([{"fold": f["name"], "accuracy": f["accuracy"], "UAR": f["uar"],
                           "test speakers": ", ".join(f["test_speakers"])} for f in result["per_fold"]])
    right.dataframe(folds.style.format({"accuracy": "{:.1%}", "UAR": "{:.1%}"}), hide_index=True)


def report_downloads(source, name: str, key: str, predictions: bool) -> None:
    """Report (HTML), Figures (PNG, zip), Predictions (CSV) of a run or a saved model (`source`, as
    ser_core.reports takes it). Each file is made when its button is clicked, not on every rerun."""
    from ser_core import reports

    a, b, c = st.columns(3)
    a.download_button("Report (HTML)", lambda: reports.html_report(source), f"{name}-report.html", "text/html",
                      key=f"report_html_{key}", on_click="ignore", icon=":material/description:")
    b.download_button("Figures (PNG, zip)", lambda: reports.figures_png_zip(source), f"{name}-figures.zip",
                      "application/zip", key=f"report_png_{key}", on_click="ignore", icon=":material/image:")
    c.download_button("Predictions (CSV)", lambda: reports.predictions_csv(source), f"{name}-predictions.csv",
                      "text/csv", key=f"report_csv_{key}", on_click="ignore", icon=":material/table:",
                      disabled=not predictions,
                      help=None if predictions else "This model was saved without per-clip predictions.")


train_tab, models_tab = st.tabs(["Train a model", "Saved models"])

with train_tab:
    from ser_core.augment import AUGMENTATIONS
    from ser_core.corpora import select
    from ser_core.models import MODELS, OPTIMIZERS
    from ser_core.features import PIPELINES
    from ser_core.training import BASELINES, TrainConfig, TrainingJob, save_run

    clips = catalog_or_message()
    job = st.session_state.get("job")
    if clips is not None and (job is None or job.done):
        models = BASELINES + tuple(MODELS)
        corpus_names, speaker_names = sorted(clips["corpus"].unique()), sorted(clips["speaker"].unique())
        # The last run's choices, so that the next one can change a single thing (hidden widgets forget theirs).
        last = {**TrainConfig(model=models[0]).to_dict(), "features": "", "corpora": corpus_names, "speakers": [],
                **st.session_state.get("train_form", {})}
        with st.form("train"):
            left, middle, right = st.columns(3)
            corpora = left.multiselect("Corpora", corpus_names,
                                       default=[c for c in last["corpora"] if c in corpus_names])
            speakers = left.multiselect("Only these speakers (empty: all)", speaker_names,
                                        default=[s for s in last["speakers"] if s in speaker_names])
            model = middle.selectbox("Model", models, index=models.index(last["model"]))
            feature_names = ["", *PIPELINES]
            features = middle.selectbox("Features", feature_names, index=feature_names.index(last["features"]),
                                        format_func=lambda f: f or "the model's default")
            protocols = list(PROTOCOL_DESCRIPTIONS)
            protocol = middle.radio("Protocol", protocols, index=protocols.index(last["protocol"]),
                                    captions=list(PROTOCOL_DESCRIPTIONS.values()))
            folds = right.number_input("Folds", 2, 24, last["folds"])
            epochs = right.number_input("Epochs (Keras models)", 1, 500, last["epochs"])
            batch_size = right.number_input("Batch size", 1, 1024, last["batch_size"])
            learning_rate = right.number_input("Learning rate", 1e-5, 1.0, last["learning_rate"], format="%.5f")
            dropout = right.slider("Dropout", 0.0, 0.9, last["dropout"])
            optimizer = right.selectbox("Optimizer", OPTIMIZERS, index=OPTIMIZERS.index(last["optimizer"]))
            augmentation = left.multiselect("Augmentation (training folds only)", AUGMENTATIONS,
                                            default=last["augmentation"])
            speaker_norm = left.checkbox("Per-speaker normalisation", last["speaker_norm"])
            adapt = left.checkbox("Adapt to the test speakers", last["adapt"],
                                  help=f"For {', '.join(BASELINES)}: self-trains each fold's model on its test clips, "
                                       "without their labels, as a model does once it has heard a speaker's whole "
                                       "session.")
            start = st.form_submit_button("Train", type="primary")
        if start:
            choice = dict(model=model, features=features, protocol=protocol, folds=int(folds), epochs=int(epochs),
                          batch_size=int(batch_size), learning_rate=float(learning_rate), dropout=float(dropout),
                          optimizer=optimizer, augmentation=augmentation, speaker_norm=speaker_norm, adapt=adapt)
            st.session_state["train_form"] = {**choice, "corpora": corpora, "speakers": speakers}
            try:
                cfg = TrainConfig(**choice)
                chosen = select(clips, corpus=corpora, speaker=speakers)
                if chosen.empty:
                    raise SerError("No clips match this choice of corpora and speakers.")
                st.session_state["job"] = TrainingJob(chosen, cfg, queue=jobs.HEAVY)
                st.session_state.pop("saved", None)
                st.rerun()
            except SerError as error:
                st.error(str(error))

    @st.fragment(run_every=1.0)
    def progress_view() -> None:
        job = st.session_state.get("job")
        if job is None:
            return
        if job.ahead and not job.done:
            st.info(waiting_message(job.ahead, "training"))
        events = list(job.events)
        features = [e for e in events if e.kind == "features"]
        if features and not job.done:
            last = features[-1]
            st.progress(last.done / max(last.total, 1), text=f"{last.metrics['stage']}: {last.done}/{last.total} clips")
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

    progress_view()
    job = st.session_state.get("job")
    if job is not None and job.done:
        if job.error:
            st.error(job.error)
        elif job.run is not None:
            run = job.run
            if run.stopped:
                st.warning("Stopped: the figures cover the folds that finished.")
            if run.result is not None:
                show_result(run.result.to_dict(), "run")
            with st.form("save"):
                name = st.text_input("Save as", value=f"my-{run.config.model}")
                if st.form_submit_button("Save model"):
                    try:
                        st.session_state["saved"] = str(save_run(run, name.strip()))
                    except SerError as error:
                        st.error(str(error))
            if st.session_state.get("saved"):
                st.success(f"Saved to {st.session_state['saved']}: it is now in the model lists.")
            if run.result is not None:
                from ser_core.reports import from_run

                saved = st.session_state.get("saved")
                report_name = Path(saved).name if saved else f"{run.config.model}-{run.config.features}"
                report_downloads(from_run(run, name=report_name), report_name, "run",
                                 run.result.predictions is not None)

with models_tab:
    from ser_core.bundles import read_metadata

    models = usable_models()
    table = pd.DataFrame(models)
    if table.empty:
        st.info("No models yet.")
    else:
        st.caption("Compare like with like: the same protocol and corpora.")
        st.dataframe(table[["name", "source", "model", "features", "corpora", "protocol", "folds", "accuracy",
                            "uar", "macro_f1", "created"]]
                     .style.format({"accuracy": "{:.1%}", "uar": "{:.1%}", "macro_f1": "{:.1%}"}, na_rep="-"),
                     hide_index=True)
        chosen = st.selectbox("Model", models, format_func=lambda m: f"{m['name']} ({m['source']})", key="card")
        card = Path(chosen["path"]) / "README.md"
        if card.is_file():
            with st.expander("Model card", expanded=False):
                st.markdown(card.read_text(errors="replace"))
        try:
            evaluation = read_metadata(chosen["path"])[1].get("evaluation")
        except SerError as error:  # damaged since it was listed
            st.warning(str(error))
        else:
            if evaluation:
                show_result(evaluation, "saved")
                from ser_core.bundles import PREDICTIONS_FILE

                report_downloads(chosen["path"], chosen["name"], "saved",
                                 (Path(chosen["path"]) / PREDICTIONS_FILE).is_file())
            else:
                st.info("This model was saved without an evaluation.")
