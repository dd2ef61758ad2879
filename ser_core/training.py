"""Training a model to keep: evaluate it honestly first, then fit it on all the data and save it."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from . import config
from .errors import ModelError


def train_baseline(catalog: pd.DataFrame, name: str, *, features: str = "egemaps", classifier: str = "svm",
                   protocol: str = config.DEFAULT_PROTOCOL, folds: int = config.DEFAULT_FOLDS,
                   seed: int = config.DEFAULT_SEED, out_dir: str | os.PathLike | None = None, n_jobs: int = -1,
                   progress: Callable[[str, int, int], None] | None = None) -> Path:
    """Cross-validate a scikit-learn baseline under `protocol`, fit it on every clip, save a bundle.

    The saved metadata carries the measured figures and the protocol that produced them.
    Without `out_dir` the bundle goes to the user's models folder, where a shipped name is refused.
    """
    from .bundles import save_bundle
    from .classifiers import make_classifier
    from .evaluation import cross_validate
    from .features import extract_features, get_pipeline, pool

    if out_dir is None:
        if (config.SHIPPED_MODELS_DIR / name).exists():
            raise ModelError(f"{name!r} is the name of a shipped model: choose another name for yours.")
        target = config.user_models_dir() / name
    else:
        target = Path(out_dir) / name

    pipeline = get_pipeline(features)
    X = extract_features(catalog, features, n_jobs=n_jobs,
                         progress=(lambda d, t: progress("features", d, t)) if progress else None)
    result = cross_validate(X, catalog, classifier=classifier, protocol=protocol, folds=folds, seed=seed,
                            features=features,
                            progress=(lambda d, t: progress("folds", d, t)) if progress else None)
    model = make_classifier(classifier, seed=seed).fit(pool(X, pipeline.kind), catalog["label"].to_numpy())
    metadata = {
        "labels": [str(label) for label in model.classes_],
        "features": pipeline.to_dict(),
        "sample_rate": pipeline.sample_rate,
        "classifier": classifier,
        "training": {"corpora": sorted(catalog["corpus"].unique()), "n_clips": len(catalog),
                     "n_speakers": int(catalog["speaker"].nunique()), "seed": seed,
                     "label_counts": {str(k): int(v) for k, v in catalog["label"].value_counts().items()}},
        "evaluation": result.to_dict(),
    }
    return save_bundle(target, model, metadata)
