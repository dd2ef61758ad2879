"""Feature extraction on a Dask cluster (a department's machines) gives the same features as on this one."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from ser_core import config
from ser_core.corpora import build_catalog
from ser_core.features import extract_features, get_pipeline


@pytest.fixture
def two_workers():
    """A local Dask cluster of two worker processes: what `dask scheduler` and two `dask worker`s make."""
    from dask.distributed import LocalCluster

    # A spawned worker runs __main__'s file first; after an AppTest that is a page script, which must not run.
    main, sys.modules["__main__"] = sys.modules["__main__"], types.ModuleType("__main__")
    try:
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    finally:
        sys.modules["__main__"] = main
    with cluster:
        yield cluster


def test_features_extracted_on_a_two_worker_cluster_are_the_local_ones_bit_for_bit(shared_corpora, tmp_path,
                                                                                   monkeypatch, two_workers):
    catalog = build_catalog(shared_corpora, ["ravdess"])
    clips = catalog[catalog["speaker"].isin(["ravdess_01", "ravdess_02"])].reset_index(drop=True)  # 120 clips
    pipeline = get_pipeline("mfcc_prosody")
    here = extract_features(clips, pipeline, cache_dir=tmp_path / "here", n_jobs=1)
    monkeypatch.setenv(config.CLUSTER_ENV, two_workers.scheduler_address)
    there = extract_features(clips, pipeline, cache_dir=tmp_path / "shared-cache")
    assert np.isfinite(there).all()
    np.testing.assert_array_equal(there, here)
    assert len(list((tmp_path / "shared-cache").rglob("*.bin"))) == len(clips)  # the workers filled the cache
    from dask.distributed import Client

    with Client(two_workers.scheduler_address) as client:  # both workers took chunks (4 of 32 clips)
        done = client.run(lambda dask_worker: dask_worker.state.transition_counter)
    assert len(done) == 2 and all(count > 0 for count in done.values())


def test_an_unreachable_scheduler_is_one_clear_line(shared_corpora, capsys):
    from ser_core.cli import main

    code = main(["features", "--data-dir", str(shared_corpora), "--corpus", "tess", "--pipeline", "mfcc_prosody",
                 "--cluster", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2 and "Cannot reach the Dask scheduler at tcp://127.0.0.1:9" in err and "Traceback" not in err
    assert config.cluster_address() is None  # --cluster was for that command only
