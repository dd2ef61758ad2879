"""Models on voices, microphones and corpora they never heard: leave one corpus out; cold, room, after N clips.

    .venv/bin/python bench/bench_new_voices.py --data-dir DIR [--recipes mfcc_prosody:svm:voice,...]
                                               [--merge-calm] [--json FILE]

DIR holds ravdess, tess and cremad (docs/data.md says how to unpack CREMA-D). A recipe is features:classifier:
normalisation, the normalisation one of none (each clip as it is), speaker (trained on each speaker standardised
by their own statistics, as compare-ge2e-ridge) or voice (trained on the population, room and voice levels,
adaptation.training_features). Each recipe is trained on two corpora and tested on the third, on the emotions both
sides share, and each test clip is scored (evaluation.voice_norm_tests):
- cold: alone, by the training speakers' statistics (a fresh install classifying one upload);
- room: by the mean of the held-out corpus's other speakers, unlabelled (a class's room and microphone);
- voice N: each test speaker by N of their clips, unlabelled, scored on their other clips (N = 2, 5, 10, 20;
  DRAWS random draws), what Live does as a student talks.
A recipe without normalisation is scored cold only. Beside it, within each corpus by speaker (RAVDESS and CREMA-D
5 folds by actor, TESS across its two speakers), cold. The headline is the mean UAR over the three held-out
corpora. Features are cached (the first run extracts them: ComParE takes about 40 minutes for CREMA-D on 2 cores).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from ser_core import config  # noqa: E402
from ser_core.adaptation import population_prior  # noqa: E402
from ser_core.classifiers import fit_classifier  # noqa: E402
from ser_core.corpora import build_catalog  # noqa: E402
from ser_core.evaluation import (compute_metrics, extract_usable, make_splits, voice_norm_tests,  # noqa: E402
                                 voice_norm_training)
from ser_core.features import get_pipeline, pool  # noqa: E402

CORPORA = ("ravdess", "tess", "cremad")
RECIPES = "mfcc_prosody:svm:none,mfcc_prosody:svm:voice"
HEARD_CLIPS = (2, 5, 10, 20)
DRAWS = 3
WITHIN_FOLDS = {"ravdess": 5, "tess": 2, "cremad": 5}


def scorings(normalisation: str) -> list[tuple[str, str, int]]:
    """(column, scoring, clips heard) of a recipe."""
    if normalisation == "none":
        return [("cold", "cold", 0)]
    return [("cold", "cold", 0), ("room", "room", 0)] + [(f"voice {n}", "voice", n) for n in HEARD_CLIPS]


def fit(classifier: str, normalisation: str, X, y, catalog, rows, seed: int):
    """The recipe's model on `rows`, and its training Prior (None without normalisation)."""
    if normalisation == "none":
        return fit_classifier(classifier, X[rows], y[rows], seed=seed), None
    prior = population_prior(X[rows], catalog["speaker"].to_numpy()[rows])
    levels = ("voice",) if normalisation == "speaker" else None
    X_train = voice_norm_training(X[rows], catalog, rows, prior, levels, seed)
    return fit_classifier(classifier, X_train, y[rows], seed=seed), prior


def score(model, prior, X, y, catalog, split, scoring: str, clips: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(truth, predicted) of one split's test clips under a scoring (DRAWS draws of the voice clips, pooled)."""
    truth, predicted = [], []
    for draw in range(DRAWS if scoring == "voice" else 1):
        if prior is None:
            rows, X_test = split.test, X[split.test]
        else:
            (scored,), tests = voice_norm_tests(X, catalog, [split], scoring=scoring, voice_clips=clips,
                                                seed=seed + draw, prior=prior)
            rows, X_test = scored.test, tests[split.name][1]
        truth.append(y[rows])
        predicted.append(model.predict(X_test))
    return np.concatenate(truth), np.concatenate(predicted)


def run_recipe(recipe: str, catalog, seed: int, n_jobs: int) -> dict:
    features, classifier, normalisation = recipe.split(":")
    start = time.perf_counter()
    usable = extract_usable(catalog, features, protocols=(), n_jobs=n_jobs)
    catalog, X = usable.catalog, pool(usable.X, get_pipeline(features).kind).astype(np.float64)
    y = catalog["label"].to_numpy()
    columns = scorings(normalisation)
    held_out, within = {}, {}
    for split in make_splits(catalog, "corpus"):
        model, prior = fit(classifier, normalisation, X, y, catalog, split.train, seed)
        corpus = split.name.removeprefix("test on ")
        held_out[corpus] = {column: compute_metrics(*score(model, prior, X, y, catalog, split, scoring, clips, seed))
                            for column, scoring, clips in columns}
        print(f"  held out {corpus}: " + ", ".join(f"{c} {m['uar']:.1%}" for c, m in held_out[corpus].items()),
              flush=True)
    for corpus in CORPORA:
        rows = np.flatnonzero(catalog["corpus"].to_numpy() == corpus)
        part = catalog.iloc[rows].reset_index(drop=True)
        folds = []
        for split in make_splits(part, "speaker", folds=WITHIN_FOLDS[corpus], seed=seed):
            model, prior = fit(classifier, normalisation, X[rows], y[rows], part, split.train, seed)
            folds.append(score(model, prior, X[rows], y[rows], part, split, "cold", 0, seed))
        within[corpus] = compute_metrics(*(np.concatenate(side) for side in zip(*folds)))
    return {"recipe": recipe, "clips": len(catalog), "skipped": usable.skipped, "held_out": held_out,
            "within": within, "seconds": round(time.perf_counter() - start)}


def report(result: dict) -> None:
    held_out = result["held_out"]
    columns = list(next(iter(held_out.values())))
    print(f"\n{result['recipe']} ({result['clips']} clips, {result['seconds']} s): UAR (accuracy)")
    print(f"{'held out':10}" + "".join(f"{c:>17}" for c in columns))
    for corpus, by_column in held_out.items():
        print(f"{corpus:10}" + "".join(f"{m['uar']:>9.1%} ({m['accuracy']:.1%})" for m in by_column.values()))
    print(f"{'mean UAR':10}" + "".join(f"{np.mean([held_out[c][col]['uar'] for c in held_out]):>17.1%}"
                                       for col in columns))
    print("within each corpus by speaker, cold: " + ", ".join(
        f"{corpus} {m['accuracy']:.1%} (UAR {m['uar']:.1%})" for corpus, m in result["within"].items()))
    for corpus, by_column in held_out.items():
        shown = [c for c in ("cold", "room", "voice 20") if c in by_column]
        recalls = {label: "/".join(f"{by_column[c]['per_class'][label]['recall']:.0%}" for c in shown)
                   for label in by_column["cold"]["labels"] if by_column["cold"]["per_class"][label]["support"]}
        print(f"  {corpus} recall ({'/'.join(shown)}): " + ", ".join(f"{k} {v}" for k, v in recalls.items()))


def record_in_bundle(folder: Path, result: dict, merge_calm: bool) -> None:
    """The recipe's mean held-out UAR per scoring (cold, room, voice 20) in the bundle's metadata.json; for a
    speaker-normalised recipe only after 20 clips, as such a model classifies nobody before calibration."""
    from ser_core.files import write_atomically

    held_out = result["held_out"]
    columns = ((("one clip", "cold"), ("room heard", "room")) if not result["recipe"].endswith(":speaker")
               else ()) + (("after 20 clips", "voice 20"),)
    uar = {how: float(np.mean([held_out[c][column]["uar"] for c in held_out]))
           for how, column in columns if column in next(iter(held_out.values()))}
    metadata = json.loads((folder / "metadata.json").read_text())
    metadata["new_corpus"] = {"uar": uar, "measured": f"bench/bench_new_voices.py, recipe {result['recipe']}"
                              + (", calm as neutral" if merge_calm else "") + f", {time.strftime('%Y-%m-%d')}"}
    text = json.dumps(metadata, indent=2) + "\n"
    write_atomically(folder / "metadata.json", lambda path: Path(path).write_text(text))
    print(f"recorded in {folder / 'metadata.json'}: {uar}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="a folder holding ravdess, tess and cremad")
    parser.add_argument("--recipes", default=RECIPES, help=f"features:classifier:normalisation,... ({RECIPES})")
    parser.add_argument("--merge-calm", action="store_true", help="count RAVDESS's calm as neutral")
    parser.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    parser.add_argument("--jobs", type=int, default=-1)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--record", metavar="RECIPE=MODEL_FOLDER", action="append", default=[],
                        help="write a recipe's mean held-out UAR (cold, room, voice 20) into that model's "
                             "metadata.json, which the home page and `models` show")
    args = parser.parse_args()

    catalog = build_catalog(args.data_dir, CORPORA)
    missing = sorted(set(CORPORA) - set(catalog["corpus"]))
    if missing:
        sys.exit(f"{args.data_dir} lacks {', '.join(missing)}: this benchmark needs all of {', '.join(CORPORA)}")
    if args.merge_calm:
        catalog["label"] = catalog["label"].replace({"calm": "neutral"})
    print(f"{len(catalog)} clips, {catalog.groupby('corpus')['speaker'].nunique().to_dict()} speakers; "
          f"calm {'merged into neutral' if args.merge_calm else 'kept'}", flush=True)
    results = []
    for recipe in args.recipes.split(","):
        print(recipe, flush=True)
        results.append(run_recipe(recipe, catalog, args.seed, args.jobs))
        report(results[-1])
    for record in args.record:
        recipe, folder = record.split("=", 1)
        [result] = [r for r in results if r["recipe"] == recipe]
        record_in_bundle(Path(folder), result, args.merge_calm)
    if args.json:
        Path(args.json).write_text(json.dumps({"merge_calm": args.merge_calm, "draws": DRAWS, "results": results},
                                              indent=1, default=str))


if __name__ == "__main__":
    main()
